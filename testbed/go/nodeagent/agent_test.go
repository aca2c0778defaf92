package nodeagent

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

const testImages = `
images:
- image: busybox
  user: 0
  path: /usr/local/bin:/usr/bin:/bin
- image: example.com/app
  user: "10001:10001"
- image: example.com/named
  user: app
`

func testAgent(t *testing.T, objs ...interface{}) (*Agent, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	im, err := ParseImageMap("images.yaml", []byte(testImages))
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.NewClientset()
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.Secret:
			_, _ = cs.CoreV1().Secrets(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		case *v1.ConfigMap:
			_, _ = cs.CoreV1().ConfigMaps(o.Namespace).Create(context.Background(), o, metav1.CreateOptions{})
		}
	}
	self, _ := os.Executable()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rec := record.NewFakeRecorder(1000)
	a := &Agent{cfg: Config{NodeName: "n1", Root: t.TempDir(), NodeIP: "127.0.0.1", APIServerHost: "127.0.0.1", APIServerPort: 6443},
		ctx: ctx, cs: cs, images: im, self: self, recorder: rec, workers: map[types.UID]*podWorker{}, runs: map[string]runRef{}}
	a.vols = &volumeManager{a: a, tokens: map[string]cachedToken{}}
	return a, cs, rec
}

func TestImageResolve(t *testing.T) {
	im, err := ParseImageMap("images.yaml", []byte(testImages))
	if err != nil {
		t.Fatal(err)
	}
	r, err := im.Resolve("busybox:1.36")
	if err != nil || r.Ref != "docker.io/library/busybox:1.36" {
		t.Fatalf("%v %v", r, err)
	}
	if _, err := im.Resolve("nginx"); err == nil || err.(*ImageError).Reason != "ErrImagePull" {
		t.Fatalf("nginx: %v", err)
	}
	if _, err := im.Resolve("UPPER:case"); err == nil || err.(*ImageError).Reason != "InvalidImageName" {
		t.Fatalf("invalid: %v", err)
	}
	uid, name := im.Images[1].ImageUser()
	if *uid != 10001 || name != "" {
		t.Fatal(uid, name)
	}
	uid, name = im.Images[2].ImageUser()
	if uid != nil || name != "app" {
		t.Fatal(uid, name)
	}
}

func TestRunAsNonRoot(t *testing.T) {
	yes := true
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{RunAsNonRoot: &yes}, Containers: []v1.Container{{Name: "c"}}}}
	zero := int64(0)
	err := verifyRunAsNonRoot(pod, &pod.Spec.Containers[0], &zero, "")
	want := `container has runAsNonRoot and image will run as root (pod: "p_ns(u1)", container: c)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v", err)
	}
	err = verifyRunAsNonRoot(pod, &pod.Spec.Containers[0], nil, "app")
	if err == nil || !strings.Contains(err.Error(), "image has non-numeric user (app), cannot verify user is non-root") {
		t.Fatalf("got %v", err)
	}
	u := int64(1000)
	pod.Spec.SecurityContext.RunAsUser = &u
	if err := verifyRunAsNonRoot(pod, &pod.Spec.Containers[0], &zero, ""); err != nil {
		t.Fatal(err)
	}
}

func waitPod(t *testing.T, cs *fake.Clientset, ns, name string, ok func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var p *v1.Pod
	for time.Now().Before(deadline) {
		var err error
		p, err = cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && ok(p) {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("pod %s/%s never reached the state; status: %+v", ns, name, p.Status)
	return nil
}

func TestPodLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containers get their own PID and mount namespaces (run go test as root, as make test does)")
	}
	secret := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Data: map[string][]byte{"password": []byte("hunter2")}}
	a, cs, rec := testAgent(t, secret)
	never := v1.RestartPolicyNever
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "job-1", Namespace: "ns", UID: "uid-1", Labels: map[string]string{"app": "x"}},
		Spec: v1.PodSpec{NodeName: "n1", RestartPolicy: never,
			Volumes: []v1.Volume{{Name: "work", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
				{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}}},
			InitContainers: []v1.Container{{Name: "init", Image: "busybox", Command: []string{"sh", "-c", "echo from-init > /work/f"},
				VolumeMounts: []v1.VolumeMount{{Name: "work", MountPath: "/work"}}}},
			Containers: []v1.Container{{Name: "main", Image: "busybox",
				Command: []string{"sh", "-c", "cat /work/f; cat /etc/sec/password; echo; echo $(POD) $MYNS; grep -c job-1 /etc/hosts; hostname; echo done > /dev/termination-log; exit 2"},
				Env: []v1.EnvVar{{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "MYNS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}},
				VolumeMounts: []v1.VolumeMount{{Name: "work", MountPath: "/work"}, {Name: "sec", MountPath: "/etc/sec", ReadOnly: true}}}}}}
	if _, err := cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.podChanged(pod)
	p := waitPod(t, cs, "ns", "job-1", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	cst := p.Status.ContainerStatuses[0]
	if cst.State.Terminated == nil || cst.State.Terminated.ExitCode != 2 || cst.State.Terminated.Reason != "Error" || cst.State.Terminated.Message != "done\n" {
		t.Fatalf("container status %+v", cst.State)
	}
	if ic := p.Status.InitContainerStatuses[0]; ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" {
		t.Fatalf("init status %+v", ic.State)
	}
	a.mu.Lock()
	w := a.workers["uid-1"]
	a.mu.Unlock()
	w.mu.Lock()
	logPath := w.snap["main"].curLog
	w.mu.Unlock()
	logs := readLogContent(t, logPath)
	for _, want := range []string{"from-init", "hunter2", "job-1 ns", "stdout:1\nstdout:job-1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q: %s", want, logs)
		}
	}
	_ = rec
}

func TestImageNotInMap(t *testing.T) {
	a, cs, _ := testAgent(t)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-2"},
		Spec: v1.PodSpec{NodeName: "n1", RestartPolicy: v1.RestartPolicyAlways, Containers: []v1.Container{{Name: "c", Image: "nginx:1.27"}}}}
	_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
	a.podChanged(pod)
	p := waitPod(t, cs, "ns", "p", func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ImagePullBackOff"
	})
	if p.Status.Phase != v1.PodPending {
		t.Fatal(p.Status.Phase)
	}
}
