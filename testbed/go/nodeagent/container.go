package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/securitycontext"
)

// containerKind distinguishes the three kinds of containers a pod runs.
type containerKind int

const (
	kindInit containerKind = iota
	kindSidecar
	kindRegular
)

// ctrState is what the agent knows of one container of a pod across its runs.
type ctrState struct {
	spec         *v1.Container
	kind         containerKind
	fieldPath    string
	restartCount int32
	cur          *run
	waiting      *v1.ContainerStateWaiting // set while the container is not running
	lastTerm     *v1.ContainerStateTerminated
	prevTerm     *v1.ContainerStateTerminated // termination before lastTerm (lastState)
	prevLog      string
	curLog       string
	image        *ResolvedImage
	backoff      time.Duration
	retryAt      time.Time
	pullFailures int
	everStarted  bool
}

// ran says whether the container has run at least once.
func (c *ctrState) ran() bool { return c.cur != nil || c.lastTerm != nil }

// sidecarStarted says whether a sidecar has started (its startup probe passed) once.
func (c *ctrState) sidecarStarted() bool {
	if c.cur != nil && c.cur.probes.started.Load() {
		c.everStarted = true
	}
	return c.everStarted
}

func (c *ctrState) running() bool { return c.cur != nil && c.cur.Running() }

// succeeded says whether the last run exited 0 and nothing runs now.
func (c *ctrState) succeeded() bool {
	return !c.running() && c.lastTerm != nil && c.lastTerm.ExitCode == 0
}

// startContainer prepares and starts one run of a container. It returns false when the
// container could not start (its waiting state says why).
func (w *podWorker) startContainer(pod *v1.Pod, c *ctrState) bool {
	a := w.a
	spec := c.spec
	ref := w.ref(c)
	img, err := a.images.Resolve(spec.Image)
	if err != nil {
		ie := err.(*ImageError)
		if ie.Reason == "InvalidImageName" {
			c.waiting = &v1.ContainerStateWaiting{Reason: "InvalidImageName", Message: ie.Message}
			a.event(ref, v1.EventTypeWarning, "InspectFailed", ie.Message)
			a.event(ref, v1.EventTypeWarning, "Failed", "Error: InvalidImageName")
			return false
		}
		if spec.ImagePullPolicy == v1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", spec.Image)
			c.waiting = &v1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: msg}
			a.event(ref, v1.EventTypeWarning, "ErrImageNeverPull", msg)
			a.event(ref, v1.EventTypeWarning, "Failed", "Error: ErrImageNeverPull")
			c.retryAt = time.Now().Add(10 * time.Second)
			return false
		}
		c.pullFailures++
		if c.waiting != nil && c.waiting.Reason == "ErrImagePull" {
			c.waiting = &v1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", spec.Image, ie.Message)}
			a.event(ref, v1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", spec.Image))
			a.event(ref, v1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
			d := 10 * time.Second << min(c.pullFailures-2, 5)
			if d > 300*time.Second {
				d = 300 * time.Second
			}
			c.retryAt = time.Now().Add(d)
			return false
		}
		a.event(ref, v1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", spec.Image))
		a.event(ref, v1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", spec.Image, ie.Message))
		a.event(ref, v1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		c.waiting = &v1.ContainerStateWaiting{Reason: "ErrImagePull", Message: ie.Message}
		c.retryAt = time.Now().Add(time.Second)
		return false
	}
	c.image = img
	c.pullFailures = 0
	if spec.ImagePullPolicy == v1.PullAlways {
		// The kubelet names the image with its default tag in pull events.
		tagged := spec.Image
		if n, err := reference.ParseNormalizedNamed(spec.Image); err == nil {
			tagged = reference.FamiliarString(reference.TagNameOnly(n))
		}
		a.event(ref, v1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", tagged))
		a.event(ref, v1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in 0s (0s including waiting). Image size: 0 bytes.", tagged))
	} else {
		a.event(ref, v1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", spec.Image))
	}

	configErr := func(msg string) bool {
		c.waiting = &v1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: msg}
		a.event(ref, v1.EventTypeWarning, "Failed", "Error: "+msg)
		c.retryAt = time.Now().Add(2 * time.Second)
		return false
	}
	uid, username := img.Entry.ImageUser()
	if err := verifyRunAsNonRoot(pod, spec, uid, username); err != nil {
		return configErr(err.Error())
	}
	eb := &envBuilder{a: a, ctx: w.ctx, pod: pod, secrets: map[string]*v1.Secret{}, configMaps: map[string]*v1.ConfigMap{}}
	env, err := eb.build(spec, img.Entry)
	if err != nil {
		return configErr(err.Error())
	}
	argv := commandLine(spec, img.Entry, env)
	if len(argv) == 0 {
		return configErr("no command specified")
	}
	mounts, err := w.containerMounts(spec, env)
	if err != nil {
		return configErr(err.Error())
	}
	wd := spec.WorkingDir
	if wd == "" {
		wd = img.Entry.WorkingDir
	}
	ctrDir := filepath.Join(w.dir, "containers", spec.Name)
	runDir := filepath.Join(ctrDir, "run-"+strconv.Itoa(int(c.restartCount)))
	_ = os.RemoveAll(runDir)
	termPath := filepath.Join(ctrDir, "termination-log-"+strconv.Itoa(int(c.restartCount)))
	tp := spec.TerminationMessagePath
	if tp == "" {
		tp = "/dev/termination-log"
	}
	mounts = append(mounts, initMount{Source: termPath, Target: tp})
	for _, layer := range img.Entry.Layers {
		mounts = append(mounts, initMount{Source: layer, Target: layer, ReadOnly: true})
	}
	etcMounts, err := w.etcFiles(pod)
	if err != nil {
		return configErr(err.Error())
	}
	mounts = append(etcMounts, mounts...)
	logPath := filepath.Join(w.a.cfg.Root, "logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), spec.Name, strconv.Itoa(int(c.restartCount))+".log")
	rs := runSpec{Stdin: spec.Stdin, StdinOnce: spec.StdinOnce, Dir: runDir, TmpDir: filepath.Join(runDir, "tmp"), LogPath: logPath, TermPath: termPath,
		Init: initSpec{Argv: argv, Env: env, WorkingDir: wd, Hostname: podHostname(pod), Mounts: mounts, ReadOnly: readOnlyRoot(pod, spec)}}
	r, err := startRun(a.self, rs, w.poke)
	if err != nil {
		msg := "failed to create containerd task: " + err.Error()
		c.waiting = &v1.ContainerStateWaiting{Reason: "CreateContainerError", Message: msg}
		a.event(ref, v1.EventTypeWarning, "Failed", "Error: "+msg)
		c.retryAt = time.Now().Add(5 * time.Second)
		return false
	}
	if c.curLog != "" {
		// The kubelet's container GC keeps one dead container per container: older logs go.
		if c.prevLog != "" && c.prevLog != c.curLog {
			_ = os.Remove(c.prevLog)
		}
		c.prevLog = c.curLog
	}
	c.curLog = logPath
	c.cur = r
	c.waiting = nil
	a.registerRun(r, w, c)
	w.startProbes(pod, c, r)
	w.postStart(pod, c, r)
	a.event(ref, v1.EventTypeNormal, "Created", "Container created")
	a.event(ref, v1.EventTypeNormal, "Started", "Container started")
	return true
}

func readOnlyRoot(pod *v1.Pod, c *v1.Container) bool {
	sc := securitycontext.DetermineEffectiveSecurityContext(pod, c)
	return sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
}

// podHostname is the pod's hostname: spec.hostname, or its name (at most 63 characters).
func podHostname(pod *v1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// etcFiles are the kubelet-managed /etc/hosts (with the pod's hostname and hostAliases) and
// the runtime's /etc/hostname, shared by the pod's containers (not for hostNetwork pods).
func (w *podWorker) etcFiles(pod *v1.Pod) ([]initMount, error) {
	hostname := podHostname(pod)
	fqdn := hostname
	if pod.Spec.Subdomain != "" {
		fqdn = fmt.Sprintf("%s.%s.%s.svc.cluster.local", hostname, pod.Spec.Subdomain, pod.Namespace)
	}
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if fqdn != hostname {
		fmt.Fprintf(&b, "%s\t%s\t%s\n", w.a.cfg.NodeIP, fqdn, hostname)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", w.a.cfg.NodeIP, hostname)
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, ha := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", ha.IP, strings.Join(ha.Hostnames, "\t"))
		}
	}
	if pod.Spec.HostNetwork {
		return nil, nil
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, err
	}
	hosts, hn := filepath.Join(w.dir, "etc-hosts"), filepath.Join(w.dir, "etc-hostname")
	if err := os.WriteFile(hosts, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(hn, []byte(hostname+"\n"), 0o644); err != nil {
		return nil, err
	}
	return []initMount{{Source: hosts, Target: "/etc/hosts"}, {Source: hn, Target: "/etc/hostname"}}, nil
}

// verifyRunAsNonRoot is the kubelet's check of runAsNonRoot against the effective user.
func verifyRunAsNonRoot(pod *v1.Pod, container *v1.Container, uid *int64, username string) error {
	sc := securitycontext.DetermineEffectiveSecurityContext(pod, container)
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		return nil
	}
	podDesc := fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
	if sc.RunAsUser != nil {
		if *sc.RunAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", podDesc, container.Name)
		}
		return nil
	}
	switch {
	case uid == nil && len(username) > 0:
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", username, podDesc, container.Name)
	case uid != nil:
		if *uid == 0 {
			return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc, container.Name)
		}
		if *uid < 0 || *uid > 2147483647 {
			return fmt.Errorf("container has runAsNonRoot and image has an invalid user id (%d). (Must be 1-(%d)): (pod: %q, container: %s)", *uid, 2147483647, podDesc, container.Name)
		}
	}
	return nil
}

// containerMounts turns volumeMounts into binds of the pod's volume directories.
func (w *podWorker) containerMounts(c *v1.Container, env []string) ([]initMount, error) {
	envMap := map[string]string{}
	for _, kv := range env {
		if i := strings.IndexByte(kv, '='); i > 0 {
			envMap[kv[:i]] = kv[i+1:]
		}
	}
	var out []initMount
	for _, vm := range c.VolumeMounts {
		hv, ok := w.volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, c.Name)
		}
		src := hv.path
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expandSubPath(vm.SubPathExpr, envMap)
		}
		if sub != "" {
			if filepath.IsAbs(sub) || strings.HasPrefix(filepath.Clean(sub), "..") {
				return nil, fmt.Errorf("subPath %q must be a relative path within the volume", sub)
			}
			p := filepath.Join(src, sub)
			if _, err := os.Lstat(p); os.IsNotExist(err) {
				if err := os.MkdirAll(p, 0o750); err != nil {
					return nil, err
				}
			}
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			src = p
		}
		out = append(out, initMount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly || hv.readOnly})
	}
	return out, nil
}

func expandSubPath(expr string, env map[string]string) string {
	return os.Expand(strings.NewReplacer("$(", "${", ")", "}").Replace(expr), func(k string) string { return env[k] })
}

// terminated turns a finished run into the kubelet's terminated state.
func (w *podWorker) terminated(c *ctrState, r *run) *v1.ContainerStateTerminated {
	t := &v1.ContainerStateTerminated{
		ExitCode:    r.ExitCode,
		StartedAt:   metav1.NewTime(r.StartedAt),
		FinishedAt:  metav1.NewTime(r.FinishedAt),
		ContainerID: "process://" + r.ID,
	}
	switch {
	case r.StartError != "":
		t.Reason = "StartError"
		t.Message = r.StartError
		t.StartedAt = metav1.NewTime(time.Unix(0, 0).UTC())
	case r.ExitCode == 0:
		t.Reason = "Completed"
	default:
		t.Reason = "Error"
	}
	if t.Message == "" {
		if b, err := os.ReadFile(r.TermPath); err == nil && len(b) > 0 {
			if len(b) > 4096 {
				b = b[:4096]
			}
			t.Message = string(b)
		} else if c.spec.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError && r.ExitCode != 0 {
			t.Message = tailLogMessage(r.LogPath, 80, 2048)
		}
	}
	return t
}
