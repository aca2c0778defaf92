package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// Stopping containers and pods: a failed pod, the grace period, graceful deletion.

// fail stops the pod's containers and makes it Failed.
func (w *podWorker) fail(pod *v1.Pod, reason string) {
	w.killAll(w.grace(pod))
	w.collect()
	w.terminal, w.phase, w.reason = true, v1.PodFailed, reason
}

// grace is the pod's grace period: the deletion's, else terminationGracePeriodSeconds.
func (w *podWorker) grace(pod *v1.Pod) time.Duration {
	g := int64(30)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		g = *pod.DeletionGracePeriodSeconds
	}
	if g < 1 {
		g = 1 // the kubelet's minimum
	}
	return time.Duration(g) * time.Second
}

// killAll stops every running container in parallel, regular containers before sidecars.
func (w *podWorker) killAll(grace time.Duration) {
	pod, _ := w.current()
	for _, kinds := range [][]containerKind{{kindRegular, kindInit}, {kindSidecar}} {
		var wg sync.WaitGroup
		for _, c := range w.ctrs {
			if !c.running() || (c.kind != kinds[0] && (len(kinds) < 2 || c.kind != kinds[1])) {
				continue
			}
			w.a.event(w.ref(c), v1.EventTypeNormal, "Killing", fmt.Sprintf("Stopping container %s", c.spec.Name))
			wg.Add(1)
			go func(c *ctrState, r *run) { defer wg.Done(); w.stopRun(pod, c, r, grace) }(c, c.cur)
		}
		wg.Wait()
	}
}

// anyRunning says whether a container of the pod runs.
func (w *podWorker) anyRunning() bool {
	for _, c := range w.ctrs {
		if c.running() {
			return true
		}
	}
	return false
}

// stopSidecars stops what still runs once the pod is terminal (its sidecars).
func (w *podWorker) stopSidecars(pod *v1.Pod) {
	any := false
	for _, c := range w.ctrs {
		if c.running() {
			any = true
		}
	}
	if any {
		w.killAll(w.grace(pod))
		w.collect()
	}
}

// terminate is graceful deletion: stop the containers within the grace period, report the
// final status, then delete the pod for good (grace 0, UID precondition) as a kubelet does.
func (w *podWorker) terminate(pod *v1.Pod) {
	w.killAll(w.grace(pod))
	w.collect()
	if !w.terminal {
		w.terminal = true
		w.phase = v1.PodFailed
		all0 := true
		for _, c := range w.ctrs {
			if c.kind == kindRegular && (c.lastTerm == nil || c.lastTerm.ExitCode != 0) {
				all0 = false
			}
		}
		if all0 && pod.Spec.RestartPolicy != v1.RestartPolicyAlways {
			w.phase = v1.PodSucceeded
		}
	}
	w.report(pod)
	uid := pod.UID
	zero := int64(0)
	err := w.a.cs.CoreV1().Pods(pod.Namespace).Delete(w.ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.ErrorS(err, "final delete", "pod", klog.KObj(pod))
		return
	}
	w.deleted = true
}

// releaseVolumes tears down a terminated pod's volumes, as the kubelet's SyncTerminatedPod does
// (it waits for the volume manager to unmount them): emptyDir contents, Secret, ConfigMap and
// token files go once no container of the pod can run again, while the pod's status and logs stay
// until it is deleted. Argo's executor copies itself (~150 MB) into an emptyDir of every workflow
// pod, so keeping the volumes of finished pods until deletion would fill the disk.
func (w *podWorker) releaseVolumes(pod *v1.Pod) {
	w.a.vols.forget(string(pod.UID))
	if err := os.RemoveAll(filepath.Join(w.dir, "volumes")); err != nil {
		klog.ErrorS(err, "tearing down volumes", "pod", klog.KObj(pod))
		return
	}
	w.released = true
}

// cleanup removes a pod that is gone from the API: its tokens, runs, directory and logs.
func (w *podWorker) cleanup() {
	pod, _ := w.current()
	w.a.vols.forget(string(pod.UID))
	w.a.forgetRuns(w)
	_ = os.RemoveAll(w.dir)
	_ = os.RemoveAll(filepath.Join(w.a.cfg.Root, "logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID)))
	w.cancel()
}
