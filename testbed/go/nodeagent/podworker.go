package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// podWorker runs one pod bound to the node: one goroutine that syncs the pod's containers with
// its spec, as the kubelet's pod worker does, and reports its status.
type podWorker struct {
	a      *Agent
	ctx    context.Context
	cancel context.CancelFunc
	dir    string
	wake   chan struct{}
	exited chan struct{}

	mu      sync.Mutex
	pod     *v1.Pod // newest copy from the informer
	removed bool    // the pod is gone from the API

	// owned by the worker goroutine
	startTime     metav1.Time
	volumes       map[string]hostVolume
	volumesAt     time.Time
	ctrs          []*ctrState
	byName        map[string]*ctrState
	phase         v1.PodPhase
	reason        string
	message       string
	terminal      bool
	deleted       bool
	lastSent      *v1.PodStatus
	lastMountWarn time.Time
	conditions    map[v1.PodConditionType]v1.PodCondition
	snap          map[string]ctrSnap // guarded by mu
	adopted       bool               // terminal before this agent saw it: its status is kept
	reportFailed  bool               // the last status write failed: retry
	released      bool               // the terminated pod's volumes are torn down
}

func newPodWorker(a *Agent, pod *v1.Pod) *podWorker {
	ctx, cancel := context.WithCancel(a.ctx)
	w := &podWorker{a: a, ctx: ctx, cancel: cancel, pod: pod, wake: make(chan struct{}, 1), exited: make(chan struct{}),
		dir: a.podDir(pod.UID), byName: map[string]*ctrState{}, phase: v1.PodPending,
		conditions: map[v1.PodConditionType]v1.PodCondition{}}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		k := kindInit
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			k = kindSidecar
		}
		w.add(c, k, fmt.Sprintf("spec.initContainers{%s}", c.Name))
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		w.add(c, kindRegular, fmt.Sprintf("spec.containers{%s}", c.Name))
	}
	// A pod already terminal (e.g. after an agent restart) keeps its status.
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		w.terminal = true
		w.adopted = true
		w.phase = pod.Status.Phase
	}
	if pod.Status.StartTime != nil {
		w.startTime = *pod.Status.StartTime
	}
	return w
}

func (w *podWorker) add(c *v1.Container, k containerKind, fp string) {
	s := &ctrState{spec: c, kind: k, fieldPath: fp}
	w.ctrs = append(w.ctrs, s)
	w.byName[c.Name] = s
}

func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) update(pod *v1.Pod) {
	w.mu.Lock()
	w.pod = pod
	w.mu.Unlock()
	w.poke()
}

func (w *podWorker) remove() {
	w.mu.Lock()
	w.removed = true
	w.mu.Unlock()
	w.poke()
}

func (w *podWorker) current() (*v1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.removed
}

func (w *podWorker) ref(c *ctrState) *v1.ObjectReference {
	pod, _ := w.current()
	return &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		ResourceVersion: pod.ResourceVersion, FieldPath: c.fieldPath}
}

func (w *podWorker) podRef() *v1.ObjectReference {
	pod, _ := w.current()
	return &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		ResourceVersion: pod.ResourceVersion}
}

func (w *podWorker) loop() {
	defer close(w.exited)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		done := w.sync()
		w.publish()
		if done {
			return
		}
		// A terminal pod whose status is reported has nothing to do until it changes.
		idle := w.terminal && w.released && (w.lastSent != nil || w.adopted) && !w.reportFailed && !w.anyRunning()
		var tc <-chan time.Time
		if !idle {
			tc = tick.C
		}
		select {
		case <-w.wake:
		case <-tc:
		case <-w.a.ctx.Done():
			w.killAll(2 * time.Second)
			return
		}
	}
}

// sync does one step of the pod's life; it returns true when the worker is finished.
func (w *podWorker) sync() bool {
	pod, removed := w.current()
	if removed {
		w.killAll(w.grace(pod))
		w.cleanup()
		return true
	}
	if w.deleted {
		return false
	}
	if w.startTime.IsZero() {
		w.startTime = metav1.Now()
	}
	if pod.DeletionTimestamp != nil {
		w.terminate(pod)
		return false
	}
	if w.terminal {
		w.stopSidecars(pod)
		w.report(pod)
		if !w.released && !w.anyRunning() {
			w.releaseVolumes(pod)
		}
		return false
	}
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && time.Since(w.startTime.Time) >= time.Duration(*d)*time.Second {
		w.a.event(w.podRef(), v1.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
		w.terminal, w.phase = true, v1.PodFailed
		w.reason, w.message = "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
		w.report(pod)
		w.killAll(w.grace(pod))
		w.collect()
		w.report(pod)
		return false
	}
	if w.volumes == nil || time.Since(w.volumesAt) > 60*time.Second {
		vols, err := w.a.vols.setUp(w.ctx, pod, w.dir)
		if err != nil {
			if w.volumes == nil {
				if time.Since(w.lastMountWarn) > 10*time.Second {
					w.a.event(w.podRef(), v1.EventTypeWarning, "FailedMount", err.Error())
					w.lastMountWarn = time.Now()
				}
				w.report(pod)
				return false
			}
			klog.V(2).InfoS("refreshing volumes", "pod", klog.KObj(pod), "err", err)
		} else {
			w.volumes = vols
		}
		w.volumesAt = time.Now()
	}
	w.collect()
	w.step(pod)
	w.report(pod)
	return false
}

// collect records the runs that have ended.
func (w *podWorker) collect() {
	for _, c := range w.ctrs {
		if c.cur != nil && !c.cur.Running() {
			if c.lastTerm != nil {
				c.prevTerm = c.lastTerm
			}
			c.lastTerm = w.terminated(c, c.cur)
			if c.lastTerm.Reason == "StartError" {
				w.a.event(w.ref(c), v1.EventTypeWarning, "Failed", "Error: "+c.lastTerm.Message)
			}
			c.cur = nil
		}
	}
}

// mayStart applies the restart policy and back-off to a container that is not running.
func (w *podWorker) mayStart(pod *v1.Pod, c *ctrState) bool {
	if time.Now().Before(c.retryAt) {
		return false
	}
	if c.lastTerm == nil {
		return true
	}
	policy := pod.Spec.RestartPolicy
	switch c.kind {
	case kindSidecar:
		policy = v1.RestartPolicyAlways
	case kindInit:
		if policy == v1.RestartPolicyAlways {
			policy = v1.RestartPolicyOnFailure
		}
	}
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		if c.lastTerm.ExitCode == 0 {
			return false
		}
	}
	// Back-off: the first restart is immediate, then 10s doubling to 5 minutes; a run of more
	// than 10 minutes resets it.
	ranFor := c.lastTerm.FinishedAt.Sub(c.lastTerm.StartedAt.Time)
	if ranFor > 10*time.Minute {
		c.backoff = 0
	}
	if c.backoff > 0 && time.Since(c.lastTerm.FinishedAt.Time) < c.backoff {
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", c.backoff, c.spec.Name, pod.Name, pod.Namespace, pod.UID)
		if c.waiting == nil || c.waiting.Reason != "CrashLoopBackOff" {
			w.a.event(w.ref(c), v1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", c.spec.Name, pod.Name, pod.Namespace, pod.UID))
		}
		c.waiting = &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: msg}
		return false
	}
	if c.backoff == 0 {
		c.backoff = 10 * time.Second
	} else if c.backoff *= 2; c.backoff > 300*time.Second {
		c.backoff = 300 * time.Second
	}
	return true
}

func (w *podWorker) start(pod *v1.Pod, c *ctrState) {
	restart := c.lastTerm != nil
	if restart {
		c.restartCount++
	}
	if !w.startContainer(pod, c) && restart {
		c.restartCount--
	}
}

// step starts what the pod needs next: init containers in order, sidecars, then containers.
func (w *podWorker) step(pod *v1.Pod) {
	initDone := true
	for _, c := range w.ctrs {
		if c.kind == kindRegular {
			continue
		}
		if c.kind == kindSidecar {
			if !c.running() && w.mayStart(pod, c) {
				w.start(pod, c)
			}
			if !c.sidecarStarted() {
				initDone = false
				break
			}
			continue
		}
		if c.succeeded() {
			continue
		}
		initDone = false
		if c.running() {
			break
		}
		if c.lastTerm != nil && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			w.fail(pod, "")
			return
		}
		if w.mayStart(pod, c) {
			w.start(pod, c)
		}
		break
	}
	if !initDone {
		w.phase = v1.PodPending
		return
	}
	for _, c := range w.ctrs {
		if c.kind == kindRegular && !c.running() && w.mayStart(pod, c) {
			w.start(pod, c)
		}
	}
	w.phase = w.computePhase(pod)
	if w.phase == v1.PodSucceeded || w.phase == v1.PodFailed {
		w.terminal = true
		w.stopSidecars(pod)
	}
}

// computePhase is the kubelet's getPhase for a pod whose init containers are done.
func (w *podWorker) computePhase(pod *v1.Pod) v1.PodPhase {
	running, waiting, stopped, succeeded, unknownRestart := 0, 0, 0, 0, 0
	for _, c := range w.ctrs {
		if c.kind != kindRegular {
			continue
		}
		switch {
		case c.running():
			running++
		case c.lastTerm != nil:
			willRestart := pod.Spec.RestartPolicy == v1.RestartPolicyAlways ||
				(pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure && c.lastTerm.ExitCode != 0)
			if willRestart {
				unknownRestart++
				continue
			}
			stopped++
			if c.lastTerm.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0 || unknownRestart > 0:
		return v1.PodRunning
	case stopped > 0 && succeeded == stopped:
		return v1.PodSucceeded
	case stopped > 0:
		return v1.PodFailed
	}
	return v1.PodPending
}
