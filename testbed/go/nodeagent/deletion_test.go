package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// TestTerminatedPodReleasesVolumes: once a pod has terminated, its emptyDir (here ~1 MB the
// container wrote, as Argo's executor copies itself) is torn down, as the kubelet's
// SyncTerminatedPod does, while the pod, its status and its logs stay.
func TestTerminatedPodReleasesVolumes(t *testing.T) {
	a, cs, _ := testAgent(t)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "ns", UID: "uid-done"},
		Spec: v1.PodSpec{NodeName: "n1", RestartPolicy: v1.RestartPolicyNever,
			Volumes: []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}},
			Containers: []v1.Container{{Name: "c", Image: "busybox",
				Command:      []string{"sh", "-c", "head -c 1048576 /dev/zero > /scratch/blob && echo wrote"},
				VolumeMounts: []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}}}}}
	_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
	a.podChanged(pod)
	waitPod(t, cs, "ns", "done", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
	volumes := filepath.Join(a.podDir(pod.UID), "volumes")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(volumes); os.IsNotExist(err) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(volumes); !os.IsNotExist(err) {
		t.Fatalf("the terminated pod's volumes are still at %s (err %v)", volumes, err)
	}
	if _, err := cs.CoreV1().Pods("ns").Get(context.Background(), "done", metav1.GetOptions{}); err != nil {
		t.Errorf("the pod itself must stay until it is deleted: %v", err)
	}
	logs := filepath.Join(a.cfg.Root, "logs")
	if entries, err := os.ReadDir(logs); err != nil || len(entries) == 0 {
		t.Errorf("the pod's logs must stay: %v %v", entries, err)
	}
}

// TestImageLayersUnderTmp: an image's layer under the host's /tmp (a checkout's virtualenv) is
// visible in the container although the container's /tmp is its own.
func TestImageLayersUnderTmp(t *testing.T) {
	layer, err := os.MkdirTemp("/tmp", "layer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(layer) })
	if err := os.WriteFile(filepath.Join(layer, "tool"), []byte("from-the-image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, cs, _ := testAgent(t)
	im, err := ParseImageMap("images.yaml", []byte("images:\n- image: layered\n  user: 0\n  layers: ["+layer+"]\n- image: plain\n  user: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	a.images = im
	for _, image := range []string{"layered", "plain"} {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: image, Namespace: "ns", UID: types.UID("uid-" + image)},
			Spec: v1.PodSpec{NodeName: "n1", RestartPolicy: v1.RestartPolicyNever,
				Containers: []v1.Container{{Name: "c", Image: image, Command: []string{"cat", filepath.Join(layer, "tool")}}}}}
		_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
		a.podChanged(pod)
	}
	if p := waitPod(t, cs, "ns", "layered", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed }); p.Status.Phase != v1.PodSucceeded {
		t.Errorf("the layer was not visible: %s", p.Status.Phase)
	}
	if p := waitPod(t, cs, "ns", "plain", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed }); p.Status.Phase != v1.PodFailed {
		t.Errorf("without the layer the container must not see the host's /tmp: %s", p.Status.Phase)
	}
}
