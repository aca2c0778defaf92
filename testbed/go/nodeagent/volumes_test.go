package nodeagent

import (
	"context"
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestVolumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containers get their own PID and mount namespaces (run go test as root, as make test does)")
	}
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns"}, Data: map[string]string{"app.conf": "x=1", "other": "o"}}
	a, cs, _ := testAgent(t, cm)
	mode := int32(0o400)
	yes := true
	script := `cat /cfg/conf/app; echo; stat -c %a /cfg/conf/app; ls -a /cfg | tr '\n' ' '; echo;
cat /single.conf; echo; cat /proj/labels; echo; cat /proj/ns; echo; ls /opt-missing | wc -l; cat /dapi/name; echo;
echo w > /cfg/x 2>/dev/null || echo read-only`
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "vols", Namespace: "ns", UID: "uid-v", Labels: map[string]string{"a": "b"}},
		Spec: v1.PodSpec{NodeName: "n1", RestartPolicy: v1.RestartPolicyNever,
			Volumes: []v1.Volume{
				{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
					Items: []v1.KeyToPath{{Key: "app.conf", Path: "conf/app", Mode: &mode}}}}},
				{Name: "whole", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
				{Name: "opt", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "absent", Optional: &yes}}},
				{Name: "proj", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
					{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{
						{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
						{Path: "ns", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}}}}}},
				{Name: "dapi", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
					{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}},
			},
			Containers: []v1.Container{{Name: "c", Image: "busybox", Command: []string{"sh", "-c", script},
				VolumeMounts: []v1.VolumeMount{
					{Name: "cfg", MountPath: "/cfg", ReadOnly: true},
					{Name: "whole", MountPath: "/single.conf", SubPath: "app.conf"},
					{Name: "opt", MountPath: "/opt-missing"},
					{Name: "proj", MountPath: "/proj"},
					{Name: "dapi", MountPath: "/dapi"},
				}}}}}
	_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
	a.podChanged(pod)
	waitPod(t, cs, "ns", "vols", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed })
	a.mu.Lock()
	w := a.workers["uid-v"]
	a.mu.Unlock()
	w.mu.Lock()
	logPath := w.snap["c"].curLog
	w.mu.Unlock()
	logs := readLogContent(t, logPath)
	for _, want := range []string{"stdout:x=1", "stdout:400", "stdout:. .. ..20", "..data conf", "stdout:a=\"b\"", "stdout:ns\n", "stdout:0\n", "stdout:vols", "stdout:read-only"} {
		if !strings.Contains(logs+"\n", want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
