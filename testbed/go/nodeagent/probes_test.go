package nodeagent

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestProbes(t *testing.T) {
	a, cs, _ := testAgent(t)
	one := int64(1)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probed", Namespace: "ns", UID: "uid-p"},
		Spec: v1.PodSpec{NodeName: "n1", TerminationGracePeriodSeconds: &one, Containers: []v1.Container{
			{Name: "ready", Image: "busybox", Command: []string{"sh", "-c", "sleep 1; touch /tmp/ready; while :; do sleep 1; done"},
				ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"test", "-f", "/tmp/ready"}}}, PeriodSeconds: 1}},
			{Name: "dies", Image: "busybox", Command: []string{"sh", "-c", "while :; do sleep 1; done"},
				LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"false"}}}, PeriodSeconds: 1, FailureThreshold: 2}},
		}}}
	_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
	a.podChanged(pod)
	waitPod(t, cs, "ns", "probed", func(p *v1.Pod) bool {
		if len(p.Status.ContainerStatuses) != 2 {
			return false
		}
		r, d := p.Status.ContainerStatuses[0], p.Status.ContainerStatuses[1]
		return r.Ready && d.RestartCount >= 1 && d.LastTerminationState.Terminated != nil
	})
	a.mu.Lock()
	w := a.workers["uid-p"]
	a.mu.Unlock()
	w.remove()
	<-w.exited
}
