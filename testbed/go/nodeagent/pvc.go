package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/storage/ephemeral"
	storagehelpers "k8s.io/component-helpers/storage/volume"
	"k8s.io/kubernetes/pkg/volume/util/hostutil"
)

// pvcProtectionFinalizer keeps a claim in use from going away; a claim being deleted without it
// must not be mounted (the kubelet's rule).
const pvcProtectionFinalizer = "kubernetes.io/pvc-protection"

// boundClaim is a persistentVolumeClaim (or generic ephemeral) volume of the pod resolved, as the
// kubelet's desired-state populator does, to the PersistentVolume bound to its claim.
type boundClaim struct {
	pv       *v1.PersistentVolume
	readOnly bool // the pod volume's persistentVolumeClaim.readOnly
}

// claimOf is the claim behind a pod volume: its persistentVolumeClaim, or the claim the
// ephemeral volume controller creates for a generic ephemeral volume (POD-VOLUME).
func claimOf(pod *v1.Pod, vol *v1.Volume) (src *v1.PersistentVolumeClaimVolumeSource, isEphemeral bool) {
	if vol.PersistentVolumeClaim != nil {
		return vol.PersistentVolumeClaim, false
	}
	if vol.Ephemeral != nil {
		return &v1.PersistentVolumeClaimVolumeSource{ClaimName: ephemeral.VolumeClaimName(pod, vol)}, true
	}
	return nil, false
}

// mountedVolumes are the pod volumes some container mounts (the kubelet ignores the others).
func mountedVolumes(pod *v1.Pod) map[string]bool {
	out := map[string]bool{}
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for _, m := range cs[i].VolumeMounts {
				out[m.Name] = true
			}
		}
	}
	return out
}

// resolveClaims resolves every claim volume a container mounts. Any claim that cannot be
// resolved (missing, not Bound, its PV not bound back to it, not mountable by this node) fails
// the pod's volume set-up with the kubelet's "Unable to attach or mount volumes" message, and
// the pod stays in ContainerCreating until a later attempt succeeds.
func (vm *volumeManager) resolveClaims(ctx context.Context, pod *v1.Pod) (map[string]boundClaim, error) {
	used := mountedVolumes(pod)
	out := map[string]boundClaim{}
	var failed, errs []string
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if !used[vol.Name] {
			continue
		}
		src, isEphemeral := claimOf(pod, vol)
		if src == nil {
			continue
		}
		pv, err := vm.resolveClaim(ctx, pod, src, isEphemeral)
		if err != nil {
			failed = append(failed, vol.Name)
			errs = append(errs, err.Error())
			continue
		}
		out[vol.Name] = boundClaim{pv: pv, readOnly: src.ReadOnly}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		// The kubelet's message once the pod's other volumes are mounted: these plugins are not
		// attachable, so "unattached volumes" is empty.
		return nil, fmt.Errorf("Unable to attach or mount volumes: unmounted volumes=%v, unattached volumes=[], failed to process volumes=%v: %s",
			failed, failed, strings.Join(errs, "; "))
	}
	return out, nil
}

// resolveClaim gets the claim in the pod's namespace, requires it Bound, then gets its PV and
// requires the PV bound back to it and mountable by this node (hostPath or local, Filesystem).
func (vm *volumeManager) resolveClaim(ctx context.Context, pod *v1.Pod, src *v1.PersistentVolumeClaimVolumeSource, isEphemeral bool) (*v1.PersistentVolume, error) {
	wrap := func(err error) error {
		return fmt.Errorf("error processing PVC %s/%s: %v", pod.Namespace, src.ClaimName, err)
	}
	pvc, err := vm.a.cs.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, src.ClaimName, metav1.GetOptions{})
	if err != nil {
		return nil, wrap(fmt.Errorf("failed to fetch PVC from API server: %v", err))
	}
	if err := claimUsable(pvc); err != nil {
		return nil, wrap(err)
	}
	if isEphemeral {
		if err := ephemeral.VolumeIsForPod(pod, pvc); err != nil {
			return nil, err
		}
	}
	pv, err := vm.a.cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return nil, wrap(fmt.Errorf("failed to fetch PV %s from API server: %v", pvc.Spec.VolumeName, err))
	}
	if err := boundTo(pv, pvc); err != nil {
		return nil, wrap(err)
	}
	if m := pv.Spec.VolumeMode; m != nil && *m != v1.PersistentVolumeFilesystem {
		return nil, fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeMounts", pv.Name, *m)
	}
	if err := mountableHere(pv); err != nil {
		return nil, err
	}
	return pv, nil
}

// claimUsable is the kubelet's check of a claim before it looks at its volume.
func claimUsable(pvc *v1.PersistentVolumeClaim) error {
	if pvc.DeletionTimestamp != nil && !slices.Contains(pvc.Finalizers, pvcProtectionFinalizer) {
		return errors.New("PVC is being deleted")
	}
	if pvc.Status.Phase != v1.ClaimBound {
		return errors.New("PVC is not bound")
	}
	if pvc.Spec.VolumeName == "" {
		return errors.New("PVC has empty pvc.Spec.VolumeName")
	}
	return nil
}

// boundTo checks that the PV's claimRef points back at the claim.
func boundTo(pv *v1.PersistentVolume, pvc *v1.PersistentVolumeClaim) error {
	if pv.Spec.ClaimRef == nil {
		return fmt.Errorf("found PV object %s but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim", pv.Name)
	}
	if pv.Spec.ClaimRef.UID != pvc.UID {
		return fmt.Errorf("found PV object %s but its pv.Spec.ClaimRef.UID %s does not point to claim.UID %s", pv.Name, pv.Spec.ClaimRef.UID, pvc.UID)
	}
	return nil
}

// pvSourceKind names the PV's volume source for messages ("nfs", "csi", ...).
func pvSourceKind(pv *v1.PersistentVolume) string {
	s := pv.Spec.PersistentVolumeSource
	switch {
	case s.CSI != nil:
		return fmt.Sprintf("csi (driver %s)", s.CSI.Driver)
	case s.NFS != nil:
		return "nfs"
	case s.ISCSI != nil:
		return "iscsi"
	case s.FC != nil:
		return "fc"
	case s.RBD != nil:
		return "rbd"
	case s.CephFS != nil:
		return "cephfs"
	case s.Glusterfs != nil:
		return "glusterfs"
	case s.FlexVolume != nil:
		return "flexVolume"
	case s.GCEPersistentDisk != nil:
		return "gcePersistentDisk"
	case s.AWSElasticBlockStore != nil:
		return "awsElasticBlockStore"
	case s.AzureDisk != nil:
		return "azureDisk"
	case s.AzureFile != nil:
		return "azureFile"
	case s.Cinder != nil:
		return "cinder"
	case s.VsphereVolume != nil:
		return "vsphereVolume"
	}
	return "of an unknown type"
}

// mountableHere is the node's plugin lookup: only hostPath and local volumes have a plugin on
// the test bed's node; as on a kubelet, a claim's volume is mounted as a filesystem.
func mountableHere(pv *v1.PersistentVolume) error {
	if pv.Spec.HostPath == nil && pv.Spec.Local == nil {
		return fmt.Errorf("failed to get Plugin from volumeSpec for volume %q err=no volume plugin matched: "+
			"the test bed's node agent mounts only hostPath and local PersistentVolumes, and this one is %s",
			pv.Name, pvSourceKind(pv))
	}
	return nil
}

// mountPV is MountVolume for a claim's PV: the PV's node affinity against this node's labels,
// then the hostPath type check (creating the path for DirectoryOrCreate/FileOrCreate) or the
// local volume's directory. It returns the host path to bind and the kubelet's FailedMount
// message, which names the PV.
func (vm *volumeManager) mountPV(ctx context.Context, pv *v1.PersistentVolume) (string, error) {
	fail := func(op string, err error) error {
		return fmt.Errorf("MountVolume.%s for volume %q : %v", op, pv.Name, err)
	}
	if err := storagehelpers.CheckNodeAffinity(pv, vm.a.nodeLabels(ctx)); err != nil {
		return "", fail("NodeAffinity check failed", err)
	}
	switch {
	case pv.Spec.HostPath != nil:
		if err := checkHostPath(pv.Spec.HostPath.Path, pv.Spec.HostPath.Type); err != nil {
			return "", fail("SetUp failed", err)
		}
		return pv.Spec.HostPath.Path, nil
	case pv.Spec.Local != nil:
		p := pv.Spec.Local.Path
		if p == "" {
			return "", fail("GetDeviceMountPath failed", errors.New("local volume source is nil or local path is not set"))
		}
		ft, err := hostutil.NewHostUtil().GetFileType(p)
		if err != nil {
			return "", fail("GetDeviceMountPath failed", err)
		}
		switch ft {
		case hostutil.FileTypeDirectory:
			return p, nil
		case hostutil.FileTypeBlockDev:
			return "", fail("MountDevice failed", fmt.Errorf("%s is a block device: the test bed's node agent mounts only local volumes that are directories", p))
		default:
			return "", fail("GetDeviceMountPath failed", errors.New("only directory and block device are supported"))
		}
	}
	return "", fail("SetUp failed", mountableHere(pv))
}

// checkHostPath is the kubelet's hostPath type check, for pods' hostPath volumes and hostPath
// PersistentVolumes alike: DirectoryOrCreate and FileOrCreate create a missing path (a 0755
// directory, an empty 0644 file), the other types require the path to be of that type. An unset
// type checks nothing on a kubelet (the container runtime then creates a missing source as a
// directory); the node agent, on a shared host, requires such a path to exist instead.
func checkHostPath(path string, t *v1.HostPathType) error {
	typ := v1.HostPathUnset
	if t != nil {
		typ = *t
	}
	_, statErr := os.Stat(path)
	exists := statErr == nil
	is := func(want hostutil.FileType) bool {
		ft, err := hostutil.NewHostUtil().GetFileType(path)
		return err == nil && ft == want
	}
	switch typ {
	case v1.HostPathUnset:
		if !exists {
			return fmt.Errorf("hostPath type check failed: %s does not exist (the node agent creates a host path only for type DirectoryOrCreate or FileOrCreate)", path)
		}
	case v1.HostPathDirectoryOrCreate:
		if !exists {
			if err := os.MkdirAll(path, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			return nil
		}
		fallthrough
	case v1.HostPathDirectory:
		if !is(hostutil.FileTypeDirectory) {
			return fmt.Errorf("hostPath type check failed: %s is not a directory", path)
		}
	case v1.HostPathFileOrCreate:
		if !exists {
			f, err := os.OpenFile(path, os.O_CREATE, 0o644)
			if f != nil {
				_ = f.Close()
			}
			if err != nil && !os.IsExist(err) {
				return err
			}
			return nil
		}
		fallthrough
	case v1.HostPathFile:
		if !is(hostutil.FileTypeFile) {
			return fmt.Errorf("hostPath type check failed: %s is not a file", path)
		}
	case v1.HostPathSocket:
		if !is(hostutil.FileTypeSocket) {
			return fmt.Errorf("hostPath type check failed: %s is not a socket file", path)
		}
	case v1.HostPathCharDev:
		if !is(hostutil.FileTypeCharDev) {
			return fmt.Errorf("hostPath type check failed: %s is not a character device", path)
		}
	case v1.HostPathBlockDev:
		if !is(hostutil.FileTypeBlockDev) {
			return fmt.Errorf("hostPath type check failed: %s is not a block device", path)
		}
	default:
		return fmt.Errorf("%s is an invalid volume type", typ)
	}
	return nil
}
