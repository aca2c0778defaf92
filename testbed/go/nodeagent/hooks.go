package nodeagent

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
)

// runHook runs a postStart or preStop handler (exec, httpGet, sleep) within timeout.
func (w *podWorker) runHook(pod *v1.Pod, c *ctrState, r *run, h *v1.LifecycleHandler, timeout time.Duration) error {
	if h.Sleep != nil {
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-r.done:
		case <-time.After(timeout):
		}
		return nil
	}
	p := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}}
	return w.probeOnce(pod, c, r, p, timeout)
}

// postStart runs the container's postStart hook; a failure kills the container, which the
// restart policy then handles (the kubelet's FailedPostStartHook).
func (w *podWorker) postStart(pod *v1.Pod, c *ctrState, r *run) {
	if c.spec.Lifecycle == nil || c.spec.Lifecycle.PostStart == nil {
		return
	}
	go func() {
		if err := w.runHook(pod, c, r, c.spec.Lifecycle.PostStart, 2*time.Minute); err != nil && r.Running() {
			w.a.event(w.ref(c), v1.EventTypeWarning, "FailedPostStartHook", fmt.Sprintf("PostStartHook failed: %v", err))
			r.Stop(w.grace(pod))
		}
	}()
}

// stopRun is the kubelet's killContainer: the preStop hook within the grace period, then
// SIGTERM, the rest of the grace period, SIGKILL.
func (w *podWorker) stopRun(pod *v1.Pod, c *ctrState, r *run, grace time.Duration) {
	start := time.Now()
	if c.spec.Lifecycle != nil && c.spec.Lifecycle.PreStop != nil && r.Running() {
		if err := w.runHook(pod, c, r, c.spec.Lifecycle.PreStop, grace); err != nil {
			w.a.event(w.ref(c), v1.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: %v", err))
		}
		grace -= time.Since(start)
		if grace < 2*time.Second {
			grace = 2 * time.Second // the kubelet's minimum after a preStop hook
		}
	}
	r.Stop(grace)
}
