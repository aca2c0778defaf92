package nodeagent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func boundPVC(ns, name, pv string, uid types.UID) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: uid},
		Spec:   v1.PersistentVolumeClaimSpec{VolumeName: pv},
		Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound}}
}

func pvFor(name string, pvc *v1.PersistentVolumeClaim, src v1.PersistentVolumeSource) *v1.PersistentVolume {
	return &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: src,
			ClaimRef: &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID}}}
}

func claimPod(ns string, vols ...v1.Volume) *v1.Pod {
	var mounts []v1.VolumeMount
	for _, v := range vols {
		mounts = append(mounts, v1.VolumeMount{Name: v.Name, MountPath: "/mnt/" + v.Name})
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, UID: "uid-p"},
		Spec: v1.PodSpec{NodeName: "n1", Volumes: vols, Containers: []v1.Container{{Name: "c", Image: "busybox", VolumeMounts: mounts}}}}
}

func claimVolume(name, claim string, readOnly bool) v1.Volume {
	return v1.Volume{Name: name, VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}}
}

func create(t *testing.T, cs *fake.Clientset, objs ...interface{}) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *v1.PersistentVolumeClaim:
			_, err = cs.CoreV1().PersistentVolumeClaims(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *v1.PersistentVolume:
			_, err = cs.CoreV1().PersistentVolumes().Create(ctx, o, metav1.CreateOptions{})
		case *v1.Node:
			_, err = cs.CoreV1().Nodes().Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

const unmountedData = "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: "

// TestClaimResolution: how a claim volume resolves to its PV's host path, and the kubelet's
// messages when it cannot.
func TestClaimResolution(t *testing.T) {
	dir := t.TempDir()
	hostDir := filepath.Join(dir, "host", "history")
	localDir := filepath.Join(dir, "local")
	if err := os.Mkdir(localDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	orCreate := v1.HostPathDirectoryOrCreate
	isDir := v1.HostPathDirectory
	block := v1.PersistentVolumeBlock
	affinity := func(host string) *v1.VolumeNodeAffinity {
		return &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
			{Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{host}}}}}}}
	}
	deleting := boundPVC("ns", "deleting", "pv-x", "u-del")
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	deleting.Finalizers = []string{"example.com/other"}
	protected := boundPVC("ns", "protected", "pv-protected", "u-prot")
	protected.DeletionTimestamp = &now
	protected.Finalizers = []string{"kubernetes.io/pvc-protection"}

	cases := []struct {
		name     string
		objs     []interface{}
		vol      v1.Volume
		wantErr  string // the whole FailedMount message
		wantPath string
		readOnly bool
	}{
		{name: "missing claim", vol: claimVolume("data", "history", false),
			wantErr: unmountedData + `error processing PVC ns/history: failed to fetch PVC from API server: persistentvolumeclaims "history" not found`},
		{name: "pending claim", vol: claimVolume("data", "history", false),
			objs:    []interface{}{&v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "history", Namespace: "ns"}, Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending}}},
			wantErr: unmountedData + "error processing PVC ns/history: PVC is not bound"},
		{name: "claim being deleted", vol: claimVolume("data", "deleting", false), objs: []interface{}{deleting},
			wantErr: unmountedData + "error processing PVC ns/deleting: PVC is being deleted"},
		{name: "missing PV", vol: claimVolume("data", "history", false), objs: []interface{}{boundPVC("ns", "history", "pv-gone", "u1")},
			wantErr: unmountedData + `error processing PVC ns/history: failed to fetch PV pv-gone from API server: persistentvolumes "pv-gone" not found`},
		{name: "PV bound to another claim", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-1", "u1"),
				pvFor("pv-1", boundPVC("ns", "history", "", "u-old"), v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir}})},
			wantErr: unmountedData + "error processing PVC ns/history: found PV object pv-1 but its pv.Spec.ClaimRef.UID u-old does not point to claim.UID u1"},
		{name: "nfs PV", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-nfs", "u1"),
				pvFor("pv-nfs", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{NFS: &v1.NFSVolumeSource{Server: "nfs", Path: "/export"}})},
			wantErr: unmountedData + `failed to get Plugin from volumeSpec for volume "pv-nfs" err=no volume plugin matched: the test bed's node agent mounts only hostPath and local PersistentVolumes, and this one is nfs`},
		{name: "csi PV", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-csi", "u1"),
				pvFor("pv-csi", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "ebs.csi.aws.com", VolumeHandle: "vol-1"}})},
			wantErr: unmountedData + `failed to get Plugin from volumeSpec for volume "pv-csi" err=no volume plugin matched: the test bed's node agent mounts only hostPath and local PersistentVolumes, and this one is csi (driver ebs.csi.aws.com)`},
		{name: "block PV", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-b", "u1"), func() *v1.PersistentVolume {
				pv := pvFor("pv-b", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: localDir}})
				pv.Spec.VolumeMode = &block
				return pv
			}()},
			wantErr: unmountedData + "volume pv-b has volumeMode Block, but is specified in volumeMounts"},
		{name: "hostPath DirectoryOrCreate is created, readOnly claim", vol: claimVolume("data", "history", true),
			objs: []interface{}{boundPVC("ns", "history", "pv-h", "u1"),
				pvFor("pv-h", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: &orCreate}})},
			wantPath: hostDir, readOnly: true},
		{name: "hostPath Directory that is a file", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-h", "u1"),
				pvFor("pv-h", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: file, Type: &isDir}})},
			wantErr: `MountVolume.SetUp failed for volume "pv-h" : hostPath type check failed: ` + file + " is not a directory"},
		{name: "hostPath without type that does not exist", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-h", "u1"),
				pvFor("pv-h", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: filepath.Join(dir, "nope")}})},
			wantErr: `MountVolume.SetUp failed for volume "pv-h" : hostPath type check failed: ` + filepath.Join(dir, "nope") + " does not exist (the node agent creates a host path only for type DirectoryOrCreate or FileOrCreate)"},
		{name: "local PV of this node", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-l", "u1"), func() *v1.PersistentVolume {
				pv := pvFor("pv-l", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: localDir}})
				pv.Spec.NodeAffinity = affinity("n1")
				return pv
			}()},
			wantPath: localDir},
		{name: "local PV of another node", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-l", "u1"), func() *v1.PersistentVolume {
				pv := pvFor("pv-l", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: localDir}})
				pv.Spec.NodeAffinity = affinity("n2")
				return pv
			}()},
			wantErr: `MountVolume.NodeAffinity check failed for volume "pv-l" : no matching NodeSelectorTerms`},
		{name: "local PV whose path is missing", vol: claimVolume("data", "history", false),
			objs: []interface{}{boundPVC("ns", "history", "pv-l", "u1"),
				pvFor("pv-l", boundPVC("ns", "history", "", "u1"), v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: filepath.Join(dir, "gone")}})},
			wantErr: `MountVolume.GetDeviceMountPath failed for volume "pv-l" : path "` + filepath.Join(dir, "gone") + `" does not exist`},
		{name: "protected claim being deleted still mounts", vol: claimVolume("data", "protected", false),
			objs:     []interface{}{protected, pvFor("pv-protected", protected, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: localDir}})},
			wantPath: localDir},
		{name: "ephemeral volume whose claim the pod does not own",
			vol:     v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}},
			objs:    []interface{}{boundPVC("ns", "p-data", "pv-e", "u1")},
			wantErr: unmountedData + "PVC ns/p-data was not created for pod ns/p (pod is not owner)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, cs, _ := testAgent(t)
			create(t, cs, tc.objs...)
			vols, err := a.vols.setUp(context.Background(), claimPod("ns", tc.vol), t.TempDir())
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got error\n  %v\nwant\n  %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := vols["data"]; got.path != tc.wantPath || got.readOnly != tc.readOnly {
				t.Fatalf("got %+v, want %s readOnly=%v", got, tc.wantPath, tc.readOnly)
			}
			if st, err := os.Stat(tc.wantPath); err != nil || !st.IsDir() {
				t.Fatalf("%s: %v", tc.wantPath, err)
			}
		})
	}
}

// TestClaimResolutionUsesNodeLabels: a PV's node affinity is matched against the Node's labels.
func TestClaimResolutionUsesNodeLabels(t *testing.T) {
	a, cs, _ := testAgent(t)
	dir := t.TempDir()
	pvc := boundPVC("ns", "history", "pv-l", "u1")
	pv := pvFor("pv-l", pvc, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: dir}})
	pv.Spec.NodeAffinity = &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
		{Key: "topology.example.com/disk", Operator: v1.NodeSelectorOpIn, Values: []string{"ssd"}}}}}}}
	create(t, cs, pvc, pv, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"topology.example.com/disk": "ssd"}}})
	vols, err := a.vols.setUp(context.Background(), claimPod("ns", claimVolume("data", "history", false)), t.TempDir())
	if err != nil || vols["data"].path != dir {
		t.Fatalf("%+v %v", vols, err)
	}
}

// TestUnmountedClaimIgnored: a claim volume no container mounts is not resolved (the kubelet
// skips unused volumes), several failing claims are listed together.
func TestUnmountedClaimIgnored(t *testing.T) {
	a, _, _ := testAgent(t)
	pod := claimPod("ns", claimVolume("b", "claim-b", false), claimVolume("a", "claim-a", false))
	pod.Spec.Volumes = append(pod.Spec.Volumes, claimVolume("unused", "absent", false))
	_, err := a.vols.setUp(context.Background(), pod, t.TempDir())
	want := `Unable to attach or mount volumes: unmounted volumes=[a b], unattached volumes=[], failed to process volumes=[a b]: ` +
		`error processing PVC ns/claim-b: failed to fetch PVC from API server: persistentvolumeclaims "claim-b" not found; ` +
		`error processing PVC ns/claim-a: failed to fetch PVC from API server: persistentvolumeclaims "claim-a" not found`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v", err)
	}
}

// TestHostPathTypes: pods' hostPath volumes get the same type checks.
func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	ty := func(t v1.HostPathType) *v1.HostPathType { return &t }
	if err := checkHostPath(filepath.Join(dir, "a", "b"), ty(v1.HostPathDirectoryOrCreate)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o755&^currentUmask() {
		t.Fatalf("%v %v", st, err)
	}
	f := filepath.Join(dir, "f")
	if err := checkHostPath(f, ty(v1.HostPathFileOrCreate)); err != nil {
		t.Fatal(err)
	}
	if err := checkHostPath(f, ty(v1.HostPathFile)); err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[v1.HostPathType]string{
		v1.HostPathDirectory:         f + " is not a directory",
		v1.HostPathDirectoryOrCreate: f + " is not a directory",
		v1.HostPathSocket:            f + " is not a socket file",
		v1.HostPathCharDev:           f + " is not a character device",
		v1.HostPathBlockDev:          f + " is not a block device",
	} {
		if err := checkHostPath(f, ty(typ)); err == nil || err.Error() != "hostPath type check failed: "+want {
			t.Errorf("%s: %v", typ, err)
		}
	}
	if err := checkHostPath(dir, ty(v1.HostPathFile)); err == nil || !strings.HasSuffix(err.Error(), "is not a file") {
		t.Errorf("file: %v", err)
	}
	if err := checkHostPath("/dev/null", ty(v1.HostPathCharDev)); err != nil {
		t.Error(err)
	}
	if err := checkHostPath(dir, ty("Nonsense")); err == nil || err.Error() != "Nonsense is an invalid volume type" {
		t.Error(err)
	}
}

func currentUmask() os.FileMode {
	dir, _ := os.MkdirTemp("", "umask")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "d")
	_ = os.Mkdir(p, 0o777)
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return 0o777 &^ st.Mode().Perm()
}

// TestClaimPodWaitsForBinding: a pod whose claim is missing stays in ContainerCreating with the
// kubelet's FailedMount event; once the claim is bound to a hostPath PV the pod runs, writes
// into the volume (subPath and readOnly apply) and its files are on the host.
func TestClaimPodWaitsForBinding(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containers get their own PID and mount namespaces (run go test as root, as make test does)")
	}
	a, cs, rec := testAgent(t)
	host := filepath.Join(t.TempDir(), "history")
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "listen", Namespace: "ns", UID: "uid-pvc"},
		Spec: v1.PodSpec{NodeName: "n1", RestartPolicy: v1.RestartPolicyNever,
			Volumes: []v1.Volume{claimVolume("history", "history", false), claimVolume("ro", "history", true)},
			Containers: []v1.Container{{Name: "c", Image: "busybox",
				Command: []string{"sh", "-c", "echo kept > /var/lib/app/history.db && echo sub > /sub/f && (echo x > /ro/x 2>/dev/null || echo read-only) && (echo x > /rw-but-claim-ro/x 2>/dev/null || echo claim-read-only)"},
				VolumeMounts: []v1.VolumeMount{{Name: "history", MountPath: "/var/lib/app"}, {Name: "history", MountPath: "/sub", SubPath: "nested"},
					{Name: "history", MountPath: "/ro", ReadOnly: true}, {Name: "ro", MountPath: "/rw-but-claim-ro"}}}}}}
	if _, err := cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.podChanged(pod)
	p := waitPod(t, cs, "ns", "listen", func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil
	})
	if r := p.Status.ContainerStatuses[0].State.Waiting.Reason; r != "ContainerCreating" || p.Status.Phase != v1.PodPending {
		t.Fatalf("%s %s", p.Status.Phase, r)
	}
	want := `Warning FailedMount Unable to attach or mount volumes: unmounted volumes=[history ro], unattached volumes=[], failed to process volumes=[history ro]: ` +
		`error processing PVC ns/history: failed to fetch PVC from API server: persistentvolumeclaims "history" not found; ` +
		`error processing PVC ns/history: failed to fetch PVC from API server: persistentvolumeclaims "history" not found`
	select {
	case ev := <-rec.Events:
		if ev != want {
			t.Fatalf("event %q", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no FailedMount event")
	}
	// What the PV controller does: bind the claim and the PV to each other.
	orCreate := v1.HostPathDirectoryOrCreate
	pvc := boundPVC("ns", "history", "pv-history", "u-history")
	create(t, cs, pvc, pvFor("pv-history", pvc, v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: host, Type: &orCreate}}))
	p = waitPod(t, cs, "ns", "listen", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed })
	if p.Status.Phase != v1.PodSucceeded {
		t.Fatalf("%+v", p.Status)
	}
	for f, want := range map[string]string{"history.db": "kept\n", "nested/f": "sub\n"} {
		if b, err := os.ReadFile(filepath.Join(host, f)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(host, "x")); err == nil {
		t.Error("a read-only mount was written")
	}
	a.mu.Lock()
	w := a.workers["uid-pvc"]
	a.mu.Unlock()
	w.mu.Lock()
	logPath := w.snap["c"].curLog
	w.mu.Unlock()
	logs := readLogContent(t, logPath)
	for _, want := range []string{"stdout:read-only", "stdout:claim-read-only"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
