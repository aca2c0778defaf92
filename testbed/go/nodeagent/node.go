package nodeagent

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// KubeletVersion is the version the node reports: the pinned Kubernetes release.
const KubeletVersion = "v1.35.4"

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 4 << 30
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			return kb * 1024
		}
	}
	return 4 << 30
}

func (a *Agent) capacity() v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(memTotal(), resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(110, resource.DecimalSI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(100<<30, resource.BinarySI),
	}
}

func (a *Agent) allocatable() v1.ResourceList { return a.capacity() }

func readFirstLine(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
}

func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "PRETTY_NAME=") {
				return strings.Trim(strings.TrimPrefix(l, "PRETTY_NAME="), `"`)
			}
		}
	}
	return "Linux"
}

func kernel() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return ""
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

func (a *Agent) nodeStatus(prev *v1.NodeStatus) v1.NodeStatus {
	host, _ := os.Hostname()
	now := metav1.Now()
	cond := func(t v1.NodeConditionType, st v1.ConditionStatus, reason, msg string) v1.NodeCondition {
		c := v1.NodeCondition{Type: t, Status: st, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		if prev != nil {
			for _, p := range prev.Conditions {
				if p.Type == t && p.Status == st {
					c.LastTransitionTime = p.LastTransitionTime
				}
			}
		}
		return c
	}
	return v1.NodeStatus{
		Capacity:    a.capacity(),
		Allocatable: a.allocatable(),
		Conditions: []v1.NodeCondition{
			cond(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		Addresses:       []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: a.cfg.NodeIP}, {Type: v1.NodeHostName, Address: host}},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(a.cfg.Port)}},
		Images:          a.nodeImages(),
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               readFirstLine("/etc/machine-id"),
			BootID:                  readFirstLine("/proc/sys/kernel/random/boot_id"),
			KernelVersion:           kernel(),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: "process://" + KubeletVersion,
			KubeletVersion:          KubeletVersion,
			OperatingSystem:         runtime.GOOS,
			Architecture:            runtime.GOARCH,
		},
	}
}

// ownLabels are the labels the agent registers its Node with.
func (a *Agent) ownLabels() map[string]string {
	return map[string]string{
		"kubernetes.io/hostname": a.cfg.NodeName, "kubernetes.io/os": runtime.GOOS, "kubernetes.io/arch": runtime.GOARCH,
		"beta.kubernetes.io/os": runtime.GOOS, "beta.kubernetes.io/arch": runtime.GOARCH,
	}
}

// nodeLabels are the Node's current labels (a PersistentVolume's node affinity is checked
// against them), or the registered ones when the Node cannot be read.
func (a *Agent) nodeLabels(ctx context.Context) map[string]string {
	n, err := a.cs.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return a.ownLabels()
	}
	return n.Labels
}

// registerNode creates the Node (or takes over an existing one) and posts its status.
func (a *Agent) registerNode(ctx context.Context) error {
	host, _ := os.Hostname()
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: a.ownLabels()}}
	_ = host
	created, err := a.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err != nil {
		created, err = a.cs.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
	}
	a.nodeUID = created.UID
	return a.postNodeStatus(ctx)
}

func (a *Agent) postNodeStatus(ctx context.Context) error {
	// A merge patch of the status, as the kubelet's PatchNodeStatus: the controllers (taints,
	// TTL, …) write the new Node at once too, and an update carrying a stale copy of the taints
	// is refused by NodeRestriction ("not allowed to modify taints").
	n, err := a.cs.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	st := a.nodeStatus(&n.Status)
	data, err := json.Marshal(map[string]interface{}{"status": st})
	if err != nil {
		return err
	}
	_, err = a.cs.CoreV1().Nodes().Patch(ctx, a.cfg.NodeName, types.MergePatchType, data, metav1.PatchOptions{}, "status")
	return err
}

// renewLease keeps the node's Lease in kube-node-lease fresh, as the kubelet's heartbeat.
func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.cs.CoordinationV1().Leases(v1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(40)
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: v1.NamespaceNodeLease,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.cfg.NodeName, UID: a.nodeUID}}},
			Spec: coordv1.LeaseSpec{HolderIdentity: &a.cfg.NodeName, LeaseDurationSeconds: &dur, RenewTime: &now}}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity = &a.cfg.NodeName
	l.Spec.LeaseDurationSeconds = &dur
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the Lease every 10s and posts the node status every 10s.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if err := a.renewLease(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "renewing the node lease")
		}
		if err := a.postNodeStatus(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "posting node status")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// nodeImages lists the image map as the node's images (names and IDs, no sizes).
func (a *Agent) nodeImages() []v1.ContainerImage {
	var out []v1.ContainerImage
	for i := range a.images.Images {
		e := &a.images.Images[i]
		r, err := a.images.Resolve(e.Image)
		if err != nil {
			continue
		}
		out = append(out, v1.ContainerImage{Names: []string{r.ID, r.Ref}})
	}
	return out
}
