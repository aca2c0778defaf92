// Command strictcheck tells what Argo Workflows' own code makes of a CronWorkflow and the
// WorkflowTemplate it references when the workflow controller runs with
// `templateReferencing: Strict`: the steps the controller takes between a schedule firing and
// the first pod (workflow/cron/operator.go, then setExecWorkflow in
// workflow/controller/operator.go), minus talking to an API server.
//
// It validates the template and the CronWorkflow, makes the scheduled Workflow, applies the
// Strict checks (a Workflow must reference a template, and may set only the allow-listed spec
// fields), validates the Workflow, joins its spec with the template's as the controller does
// (the submitted spec sanitized first), and substitutes the global parameters into every
// container's args. It prints one JSON object; an "error" field names the first step that
// refused, and nothing after it is reported.
//
// Built by tests/integration/workflows/test_workflows_fleet_strict_argo.py against the Argo
// module testbed/argo/go.mod pins.
//
// Usage: strictcheck -cron cronworkflow.yaml -template workflowtemplate.yaml -time 1767225600
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	apiv1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	wfv1 "github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	"github.com/argoproj/argo-workflows/v4/util/template"
	"github.com/argoproj/argo-workflows/v4/workflow/common"
	wfutil "github.com/argoproj/argo-workflows/v4/workflow/util"
	"github.com/argoproj/argo-workflows/v4/workflow/validate"
)

// templates serves the one WorkflowTemplate given on the command line.
type templates struct{ only *wfv1.WorkflowTemplate }

func (t templates) Get(_ context.Context, name string) (*wfv1.WorkflowTemplate, error) {
	if t.only != nil && t.only.Name == name {
		return t.only, nil
	}
	return nil, fmt.Errorf("workflowtemplates.argoproj.io %q not found", name)
}

type noClusterTemplates struct{}

func (noClusterTemplates) Get(_ context.Context, name string) (*wfv1.ClusterWorkflowTemplate, error) {
	return nil, fmt.Errorf("clusterworkflowtemplates.argoproj.io %q not found", name)
}

type container struct {
	Template string   `json:"template"`
	Args     []string `json:"args"`
}

type report struct {
	Step               string                    `json:"step,omitempty"`
	Error              string                    `json:"error,omitempty"`
	Workflow           string                    `json:"workflow,omitempty"`
	ServiceAccountName string                    `json:"serviceAccountName,omitempty"`
	SecurityContext    *apiv1.PodSecurityContext `json:"securityContext,omitempty"`
	Containers         []container               `json:"containers,omitempty"`
}

func load(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(data, into)
}

func check(ctx context.Context, cronPath, templatePath string, scheduled time.Time) report {
	fail := func(step string, err error) report { return report{Step: step, Error: err.Error()} }
	var cron wfv1.CronWorkflow
	if err := load(cronPath, &cron); err != nil {
		return fail("load cron workflow", err)
	}
	source := templates{}
	if templatePath != "" {
		source.only = &wfv1.WorkflowTemplate{}
		if err := load(templatePath, source.only); err != nil {
			return fail("load workflow template", err)
		}
		err := validate.WorkflowTemplate(ctx, source, noClusterTemplates{}, source.only, nil, validate.Opts{})
		if err != nil {
			return fail("validate workflow template", err)
		}
	}
	if err := validate.CronWorkflow(ctx, source, noClusterTemplates{}, &cron, nil); err != nil {
		return fail("validate cron workflow", err)
	}
	wf := common.ConvertCronWorkflowToWorkflowWithProperties(
		ctx, &cron, fmt.Sprintf("%s-%d", cron.Name, scheduled.Unix()), scheduled)
	wf.Namespace = cron.Namespace
	if wf.Spec.WorkflowTemplateRef == nil {
		return fail("strict", fmt.Errorf("workflows must use workflowTemplateRef to be executed when the controller is in reference mode"))
	}
	if err := wfutil.ValidateUserOverrides(&wf.Spec); err != nil {
		return fail("strict", err)
	}
	if err := validate.Workflow(ctx, source, noClusterTemplates{}, wf, nil, validate.Opts{}); err != nil {
		return fail("validate workflow", err)
	}
	referenced, err := source.Get(ctx, wf.Spec.WorkflowTemplateRef.Name)
	if err != nil {
		return fail("fetch workflow template", err)
	}
	merged, err := wfutil.JoinWorkflowSpec(wfutil.SanitizeUserWorkflowSpec(&wf.Spec), &referenced.Spec, nil)
	if err != nil {
		return fail("join workflow spec", err)
	}
	params := map[string]any{"workflow.name": wf.Name, "workflow.namespace": wf.Namespace}
	for _, p := range merged.Spec.Arguments.Parameters {
		params["workflow.parameters."+p.Name] = p.GetValue()
	}
	out := report{
		Workflow:           wf.Name,
		ServiceAccountName: merged.Spec.ServiceAccountName,
		SecurityContext:    merged.Spec.SecurityContext,
	}
	for _, t := range merged.Spec.Templates {
		if t.Container == nil {
			continue
		}
		raw, err := json.Marshal(t.Container.Args)
		if err != nil {
			return fail("substitute", err)
		}
		resolved, err := template.Replace(ctx, string(raw), params, false)
		if err != nil {
			return fail("substitute", err)
		}
		var args []string
		if err := json.Unmarshal([]byte(resolved), &args); err != nil {
			return fail("substitute", err)
		}
		out.Containers = append(out.Containers, container{Template: t.Name, Args: args})
	}
	return out
}

func main() {
	cronPath := flag.String("cron", "", "CronWorkflow YAML")
	templatePath := flag.String("template", "", "WorkflowTemplate YAML (optional)")
	unix := flag.Int64("time", 1767225600, "scheduled time, Unix seconds")
	flag.Parse()
	if *cronPath == "" {
		fmt.Fprintln(os.Stderr, "usage: strictcheck -cron FILE [-template FILE] [-time UNIX]")
		os.Exit(2)
	}
	ctx := logging.WithLogger(context.Background(), logging.NewSlogLogger(logging.Error, logging.Text))
	result := check(ctx, *cronPath, *templatePath, time.Unix(*unix, 0).UTC())
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
