package nodeagent

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/securitycontext"
)

// containerStatus is the kubelet's view of one container.
func (w *podWorker) containerStatus(pod *v1.Pod, c *ctrState, initDone bool) v1.ContainerStatus {
	s := v1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image, RestartCount: c.restartCount}
	if c.image != nil {
		s.Image, s.ImageID = c.image.Ref, c.image.ID
	}
	f := false
	s.Started = &f
	switch {
	case c.running():
		started := c.cur.probes.started.Load()
		s.Started = &started
		s.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(c.cur.StartedAt)}
		s.ContainerID = "process://" + c.cur.ID
		s.Ready = started && c.cur.probes.ready.Load()
		if c.lastTerm != nil {
			s.LastTerminationState.Terminated = c.lastTerm
		}
	case c.waiting != nil && !(w.terminal || pod.DeletionTimestamp != nil):
		s.State.Waiting = c.waiting.DeepCopy()
		if c.lastTerm != nil {
			s.LastTerminationState.Terminated = c.lastTerm
		}
	case c.lastTerm != nil:
		s.State.Terminated = c.lastTerm
		s.ContainerID = c.lastTerm.ContainerID
		if c.prevTerm != nil {
			s.LastTerminationState.Terminated = c.prevTerm
		}
	default:
		reason := "ContainerCreating"
		if c.kind != kindRegular || !initDone {
			reason = "PodInitializing"
		}
		s.State.Waiting = &v1.ContainerStateWaiting{Reason: reason}
	}
	if c.kind == kindInit && s.State.Terminated != nil && s.State.Terminated.ExitCode == 0 {
		s.Ready = true
	}
	for _, vm := range c.spec.VolumeMounts {
		vs := v1.VolumeMountStatus{Name: vm.Name, MountPath: vm.MountPath, ReadOnly: vm.ReadOnly}
		if vm.ReadOnly {
			rro := v1.RecursiveReadOnlyDisabled
			vs.RecursiveReadOnly = &rro
		}
		s.VolumeMounts = append(s.VolumeMounts, vs)
	}
	if c.ran() {
		// What the runtime reports for a created container: its resources and its user.
		s.Resources = &v1.ResourceRequirements{Limits: c.spec.Resources.Limits, Requests: c.spec.Resources.Requests}
		s.AllocatedResources = c.spec.Resources.Requests
		s.User = containerUser(pod, c)
	}
	return s
}

// containerUser is the identity the container's process has on a real node (here it runs as
// root: see testbed/README.md).
func containerUser(pod *v1.Pod, c *ctrState) *v1.ContainerUser {
	sc := securitycontext.DetermineEffectiveSecurityContext(pod, c.spec)
	var uid, gid int64
	if c.image != nil {
		if u, _ := c.image.Entry.ImageUser(); u != nil {
			uid = *u
		}
		if i := strings.IndexByte(c.image.Entry.User, ':'); i >= 0 {
			if g, err := strconv.ParseInt(c.image.Entry.User[i+1:], 10, 64); err == nil {
				gid = g
			}
		}
	}
	if sc != nil && sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	if sc != nil && sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	groups := []int64{gid}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.FSGroup != nil {
			groups = append(groups, *psc.FSGroup)
		}
		groups = append(groups, psc.SupplementalGroups...)
	}
	return &v1.ContainerUser{Linux: &v1.LinuxContainerUser{UID: uid, GID: gid, SupplementalGroups: groups}}
}

func (w *podWorker) condition(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
	st := v1.ConditionFalse
	if ok {
		st = v1.ConditionTrue
	}
	c := v1.PodCondition{Type: t, Status: st, Reason: reason, Message: msg}
	prev, had := w.conditions[t]
	if had && prev.Status == st {
		c.LastTransitionTime = prev.LastTransitionTime
	} else {
		c.LastTransitionTime = metav1.Now()
	}
	c.LastProbeTime = metav1.Time{}
	w.conditions[t] = c
	return c
}

// status builds the pod's status as the kubelet reports it.
func (w *podWorker) status(pod *v1.Pod) *v1.PodStatus {
	s := &v1.PodStatus{Phase: w.phase, Reason: w.reason, Message: w.message, HostIP: w.a.cfg.NodeIP,
		HostIPs: []v1.HostIP{{IP: w.a.cfg.NodeIP}}, PodIP: w.a.cfg.NodeIP, PodIPs: []v1.PodIP{{IP: w.a.cfg.NodeIP}},
		QOSClass: pod.Status.QOSClass}
	if !w.startTime.IsZero() {
		st := w.startTime
		s.StartTime = &st
	}
	initDone := true
	var incompleteInit, unready []string
	for _, c := range w.ctrs {
		switch c.kind {
		case kindInit:
			if !c.succeeded() {
				initDone = false
				incompleteInit = append(incompleteInit, c.spec.Name)
			}
		case kindSidecar:
			if !c.sidecarStarted() {
				initDone = false
				incompleteInit = append(incompleteInit, c.spec.Name)
			}
		}
	}
	for _, c := range w.ctrs {
		cs := w.containerStatus(pod, c, initDone)
		// The status manager's TerminatePod: once a deleted pod has initialized, a container with
		// no terminated state is reported as lost.
		if w.terminal && pod.DeletionTimestamp != nil && initDone && c.kind == kindRegular && cs.State.Terminated == nil {
			cs.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{Reason: "ContainerStatusUnknown",
				Message: "The container could not be located when the pod was terminated", ExitCode: 137}}
		}
		if c.kind == kindRegular {
			s.ContainerStatuses = append(s.ContainerStatuses, cs)
		} else {
			s.InitContainerStatuses = append(s.InitContainerStatuses, cs)
		}
		if c.kind != kindInit && !cs.Ready {
			unready = append(unready, c.spec.Name)
		}
	}
	sandbox := w.volumes != nil && !w.terminal
	completed := w.terminal && w.phase == v1.PodSucceeded
	failed := w.terminal && w.phase == v1.PodFailed
	var conds []v1.PodCondition
	conds = append(conds, w.condition(v1.PodReadyToStartContainers, sandbox, "", ""))
	switch {
	case completed && initDone:
		conds = append(conds, w.condition(v1.PodInitialized, true, "PodCompleted", ""))
	case initDone:
		conds = append(conds, w.condition(v1.PodInitialized, true, "", ""))
	default:
		conds = append(conds, w.condition(v1.PodInitialized, false, "ContainersNotInitialized",
			fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incompleteInit, " "))))
	}
	switch {
	case completed:
		conds = append(conds, w.condition(v1.PodReady, false, "PodCompleted", ""),
			w.condition(v1.ContainersReady, false, "PodCompleted", ""))
	case failed:
		conds = append(conds, w.condition(v1.PodReady, false, "PodFailed", ""),
			w.condition(v1.ContainersReady, false, "PodFailed", ""))
	case len(unready) == 0 && initDone:
		conds = append(conds, w.condition(v1.PodReady, true, "", ""), w.condition(v1.ContainersReady, true, "", ""))
	default:
		msg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		conds = append(conds, w.condition(v1.PodReady, false, "ContainersNotReady", msg),
			w.condition(v1.ContainersReady, false, "ContainersNotReady", msg))
	}
	// Conditions others own (PodScheduled, DisruptionTarget, ...) are kept.
	own := map[v1.PodConditionType]bool{v1.PodReadyToStartContainers: true, v1.PodInitialized: true, v1.PodReady: true, v1.ContainersReady: true}
	for _, c := range pod.Status.Conditions {
		if !own[c.Type] {
			conds = append(conds, c)
		}
	}
	order := map[v1.PodConditionType]int{v1.PodReadyToStartContainers: 0, v1.PodInitialized: 1, v1.PodReady: 2, v1.ContainersReady: 3, v1.PodScheduled: 4}
	sort.SliceStable(conds, func(i, j int) bool {
		oi, ok := order[conds[i].Type]
		if !ok {
			oi = 5
		}
		oj, ok := order[conds[j].Type]
		if !ok {
			oj = 5
		}
		return oi < oj
	})
	for i := range conds {
		if conds[i].Type != v1.PodScheduled && own[conds[i].Type] {
			conds[i].ObservedGeneration = pod.Generation
		}
	}
	s.Conditions = conds
	s.ObservedGeneration = pod.Generation
	return s
}

// report sends the pod's status when it changed, as a merge patch of the status subresource.
func (w *podWorker) report(pod *v1.Pod) {
	if w.deleted || w.adopted {
		return
	}
	s := w.status(pod)
	if w.lastSent != nil && equality.Semantic.DeepEqual(w.lastSent, s) {
		return
	}
	// What the status says must already be servable: a client that sees Running asks for the
	// log at once, and the kubelet API answers from the snapshot (a 404 otherwise).
	w.publish()
	patch := map[string]interface{}{
		"metadata": map[string]interface{}{"uid": pod.UID},
		"status":   s,
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return
	}
	// A merge patch keeps fields the agent does not set (nominatedNodeName, resize, ...), and
	// replaces the lists it owns. Empty fields must be cleared explicitly.
	var m map[string]interface{}
	_ = json.Unmarshal(data, &m)
	st := m["status"].(map[string]interface{})
	for _, k := range []string{"reason", "message", "initContainerStatuses"} {
		if _, ok := st[k]; !ok {
			st[k] = nil
		}
	}
	data, _ = json.Marshal(m)
	_, err = w.a.cs.CoreV1().Pods(pod.Namespace).Patch(w.ctx, pod.Name, types.MergePatchType, data, metav1.PatchOptions{}, "status")
	if err != nil {
		klog.V(1).InfoS("pod status update failed", "pod", klog.KObj(pod), "err", err)
		w.reportFailed = true
		return
	}
	w.reportFailed = false
	w.lastSent = s
}
