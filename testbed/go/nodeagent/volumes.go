package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/api/v1/resource"
	"k8s.io/kubernetes/pkg/fieldpath"
)

// fileData is one file of a secret, configMap, projected or downwardAPI volume.
type fileData struct {
	data []byte
	mode int32
}

// volumeManager materializes a pod's volumes in directories under the pod's directory.
type volumeManager struct {
	a      *Agent
	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	token   string
	expires time.Time
	issued  time.Time
}

// hostVolume is where a pod volume is on the host, and whether every mount of it is read-only
// (a persistentVolumeClaim volume with readOnly: true).
type hostVolume struct {
	path     string
	readOnly bool
}

// setUp prepares every volume of the pod and returns the host directory (or file) of each.
// An error reads as the kubelet's FailedMount message.
func (vm *volumeManager) setUp(ctx context.Context, pod *v1.Pod, podDir string) (map[string]hostVolume, error) {
	claims, err := vm.resolveClaims(ctx, pod)
	if err != nil {
		return nil, err
	}
	out := map[string]hostVolume{}
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		dir := filepath.Join(podDir, "volumes", vol.Name)
		var err error
		switch {
		case vol.PersistentVolumeClaim != nil || vol.Ephemeral != nil:
			c, ok := claims[vol.Name]
			if !ok {
				continue // no container mounts it: the kubelet ignores it
			}
			p, err := vm.mountPV(ctx, c.pv)
			if err != nil {
				return nil, err // the message names the PV, as the kubelet's
			}
			out[vol.Name] = hostVolume{path: p, readOnly: c.readOnly}
			continue
		case vol.EmptyDir != nil:
			if err = os.MkdirAll(dir, 0o777); err == nil {
				err = os.Chmod(dir, 0o777)
			}
		case vol.HostPath != nil:
			if err = checkHostPath(vol.HostPath.Path, vol.HostPath.Type); err == nil {
				dir = vol.HostPath.Path
			}
		case vol.Secret != nil:
			var payload map[string]fileData
			payload, err = vm.secretPayload(ctx, pod, vol.Secret)
			if err == nil {
				err = writeAtomic(dir, payload)
			}
		case vol.ConfigMap != nil:
			var payload map[string]fileData
			payload, err = vm.configMapPayload(ctx, pod, vol.ConfigMap)
			if err == nil {
				err = writeAtomic(dir, payload)
			}
		case vol.DownwardAPI != nil:
			payload := map[string]fileData{}
			err = vm.downwardPayload(pod, vol.DownwardAPI.Items, mode(vol.DownwardAPI.DefaultMode), payload)
			if err == nil {
				err = writeAtomic(dir, payload)
			}
		case vol.Projected != nil:
			var payload map[string]fileData
			payload, err = vm.projectedPayload(ctx, pod, vol.Projected)
			if err == nil {
				err = writeAtomic(dir, payload)
			}
		default:
			err = fmt.Errorf("volume type not supported by the node agent (emptyDir, hostPath, secret, configMap, downwardAPI, projected, and persistentVolumeClaim and ephemeral of hostPath or local PersistentVolumes are)")
		}
		if err != nil {
			return nil, fmt.Errorf("MountVolume.SetUp failed for volume %q : %v", vol.Name, err)
		}
		out[vol.Name] = hostVolume{path: dir}
	}
	return out, nil
}

func mode(m *int32) int32 {
	if m == nil {
		return 0o644
	}
	return *m
}

func itemMode(m *int32, def int32) int32 {
	if m != nil {
		return *m
	}
	return def
}

func (vm *volumeManager) secretPayload(ctx context.Context, pod *v1.Pod, src *v1.SecretVolumeSource) (map[string]fileData, error) {
	optional := src.Optional != nil && *src.Optional
	s, err := vm.a.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, src.SecretName, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			if optional {
				return map[string]fileData{}, nil
			}
			return nil, fmt.Errorf("secret %q not found", src.SecretName)
		}
		return nil, err
	}
	return keyPayload(s.Data, src.Items, mode(src.DefaultMode), optional, "secret references non-existent secret key: %s")
}

func (vm *volumeManager) configMapPayload(ctx context.Context, pod *v1.Pod, src *v1.ConfigMapVolumeSource) (map[string]fileData, error) {
	optional := src.Optional != nil && *src.Optional
	cm, err := vm.a.cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			if optional {
				return map[string]fileData{}, nil
			}
			return nil, fmt.Errorf("configmap %q not found", src.Name)
		}
		return nil, err
	}
	return keyPayload(configMapData(cm), src.Items, mode(src.DefaultMode), optional, "configmap references non-existent config key: %s")
}

func configMapData(cm *v1.ConfigMap) map[string][]byte {
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data
}

func keyPayload(data map[string][]byte, items []v1.KeyToPath, def int32, optional bool, missing string) (map[string]fileData, error) {
	out := map[string]fileData{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = fileData{data: v, mode: def}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf(missing, it.Key)
		}
		out[it.Path] = fileData{data: v, mode: itemMode(it.Mode, def)}
	}
	return out, nil
}

func (vm *volumeManager) downwardPayload(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, def int32, out map[string]fileData) error {
	for _, it := range items {
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = fieldpath.ExtractFieldPathAsString(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			val, err = vm.a.resourceValue(pod, it.ResourceFieldRef)
		}
		if err != nil {
			return err
		}
		out[it.Path] = fileData{data: []byte(val), mode: itemMode(it.Mode, def)}
	}
	return nil
}

func (vm *volumeManager) projectedPayload(ctx context.Context, pod *v1.Pod, src *v1.ProjectedVolumeSource) (map[string]fileData, error) {
	def := mode(src.DefaultMode)
	out := map[string]fileData{}
	var errs []string
	for _, p := range src.Sources {
		switch {
		case p.Secret != nil:
			s := &v1.SecretVolumeSource{SecretName: p.Secret.Name, Items: p.Secret.Items, Optional: p.Secret.Optional, DefaultMode: &def}
			m, err := vm.secretPayload(ctx, pod, s)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			for k, v := range m {
				out[k] = v
			}
		case p.ConfigMap != nil:
			c := &v1.ConfigMapVolumeSource{LocalObjectReference: p.ConfigMap.LocalObjectReference, Items: p.ConfigMap.Items, Optional: p.ConfigMap.Optional, DefaultMode: &def}
			m, err := vm.configMapPayload(ctx, pod, c)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			for k, v := range m {
				out[k] = v
			}
		case p.DownwardAPI != nil:
			if err := vm.downwardPayload(pod, p.DownwardAPI.Items, def, out); err != nil {
				errs = append(errs, err.Error())
			}
		case p.ServiceAccountToken != nil:
			tok, err := vm.token(ctx, pod, p.ServiceAccountToken)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			out[p.ServiceAccountToken.Path] = fileData{data: []byte(tok), mode: def}
		case p.ClusterTrustBundle != nil || p.PodCertificate != nil:
			errs = append(errs, "clusterTrustBundle and podCertificate projections are not supported by the node agent")
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("[%s]", strings.Join(errs, ", "))
	}
	return out, nil
}

// token asks the TokenRequest API for a token bound to the pod, renewed at 80% of its life.
func (vm *volumeManager) token(ctx context.Context, pod *v1.Pod, p *v1.ServiceAccountTokenProjection) (string, error) {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(3600)
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	key := fmt.Sprintf("%s/%s/%s/%d", pod.UID, sa, p.Audience, exp)
	vm.mu.Lock()
	c, ok := vm.tokens[key]
	vm.mu.Unlock()
	now := time.Now()
	if ok && now.Before(c.issued.Add(c.expires.Sub(c.issued)*8/10)) {
		return c.token, nil
	}
	var aud []string
	if p.Audience != "" {
		aud = []string{p.Audience}
	}
	tr := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		Audiences:         aud,
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	res, err := vm.a.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("failed to fetch token: %v", err)
	}
	vm.mu.Lock()
	vm.tokens[key] = cachedToken{token: res.Status.Token, issued: now, expires: res.Status.ExpirationTimestamp.Time}
	vm.mu.Unlock()
	return res.Status.Token, nil
}

func (vm *volumeManager) forget(uid string) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for k := range vm.tokens {
		if strings.HasPrefix(k, uid+"/") {
			delete(vm.tokens, k)
		}
	}
}

// resourceValue is a resourceFieldRef's value; unset limits default to the node's allocatable.
func (a *Agent) resourceValue(pod *v1.Pod, fs *v1.ResourceFieldSelector) (string, error) {
	c := findContainer(pod, fs.ContainerName)
	if c == nil {
		return "", fmt.Errorf("container %s not found", fs.ContainerName)
	}
	merged := c.DeepCopy()
	if merged.Resources.Limits == nil {
		merged.Resources.Limits = v1.ResourceList{}
	}
	for name, q := range a.allocatable() {
		if _, ok := merged.Resources.Limits[name]; !ok {
			merged.Resources.Limits[name] = q
		}
	}
	return resource.ExtractContainerResourceValue(fs, merged)
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
