// The pinned Argo modules: their CRDs and JSON schemas are what the project installs and
// validates against (testbed/argo.py); the next step builds the controller from them too.
module tenant-lifecycle.dev/testbed/argo

go 1.25.0

require (
	github.com/argoproj/argo-events v1.9.8
	github.com/argoproj/argo-workflows/v4 v4.1.4
)
