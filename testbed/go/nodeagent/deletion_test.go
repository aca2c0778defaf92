package nodeagent

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"
)

// TestGracefulDeletion: SIGTERM reaches the container's PID 1 (which traps it), then the agent
// deletes the pod with grace period 0 and the pod's UID as precondition.
func TestGracefulDeletion(t *testing.T) {
	a, cs, _ := testAgent(t)
	grace := int64(5)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "del", Namespace: "ns", UID: "uid-del"},
		Spec: v1.PodSpec{NodeName: "n1", TerminationGracePeriodSeconds: &grace, RestartPolicy: v1.RestartPolicyAlways,
			Containers: []v1.Container{{Name: "c", Image: "busybox",
				Command: []string{"sh", "-c", `trap "echo bye; exit 0" TERM; while :; do sleep 0.2; done`}}}}}
	_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
	a.podChanged(pod)
	p := waitPod(t, cs, "ns", "del", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	p = p.DeepCopy()
	now := metav1.Now()
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
	start := time.Now()
	a.podChanged(p)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), "del", metav1.GetOptions{}); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("deletion took %s: SIGTERM was not delivered to the trap", time.Since(start))
	}
	var del *k8stesting.DeleteActionImpl
	for _, act := range cs.Actions() {
		if d, ok := act.(k8stesting.DeleteActionImpl); ok && d.GetResource().Resource == "pods" {
			del = &d
		}
	}
	if del == nil {
		t.Fatal("no delete")
	}
	o := del.GetDeleteOptions()
	if o.GracePeriodSeconds == nil || *o.GracePeriodSeconds != 0 || o.Preconditions == nil || *o.Preconditions.UID != "uid-del" {
		t.Errorf("delete options %+v", o)
	}
}
