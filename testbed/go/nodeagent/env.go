package nodeagent

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/fieldpath"
	"k8s.io/kubernetes/pkg/kubelet/envvars"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// envBuilder resolves a container's environment as the kubelet's makeEnvironmentVariables does.
type envBuilder struct {
	a   *Agent
	ctx context.Context
	pod *v1.Pod

	secrets    map[string]*v1.Secret
	configMaps map[string]*v1.ConfigMap
}

func (e *envBuilder) secret(name string) (*v1.Secret, error) {
	if s, ok := e.secrets[name]; ok {
		return s, nil
	}
	s, err := e.a.cs.CoreV1().Secrets(e.pod.Namespace).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	e.secrets[name] = s
	return s, nil
}

func (e *envBuilder) configMap(name string) (*v1.ConfigMap, error) {
	if c, ok := e.configMaps[name]; ok {
		return c, nil
	}
	c, err := e.a.cs.CoreV1().ConfigMaps(e.pod.Namespace).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	e.configMaps[name] = c
	return c, nil
}

// serviceEnv is what the kubelet adds for the master service: the in-cluster address of the
// apiserver, here the real apiserver on the host.
func (a *Agent) serviceEnv() map[string]string {
	host, port := a.cfg.APIServerHost, strconv.Itoa(a.cfg.APIServerPort)
	addr := "tcp://" + host + ":" + port
	p := "KUBERNETES_PORT_" + port + "_TCP"
	return map[string]string{
		"KUBERNETES_SERVICE_HOST":       host,
		"KUBERNETES_SERVICE_PORT":       port,
		"KUBERNETES_SERVICE_PORT_HTTPS": port,
		"KUBERNETES_PORT":               addr,
		p:                               addr,
		p + "_PROTO":                    "tcp",
		p + "_PORT":                     port,
		p + "_ADDR":                     host,
	}
}

// serviceLinks are the Docker-link style variables of the namespace's Services, as the kubelet
// gives when enableServiceLinks is on (the apiserver's own Service is given separately).
func (a *Agent) serviceLinks(ctx context.Context, ns string) []v1.EnvVar {
	list, err := a.cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var svcs []*v1.Service
	for i := range list.Items {
		s := &list.Items[i]
		if ns == metav1.NamespaceDefault && s.Name == "kubernetes" {
			continue
		}
		svcs = append(svcs, s)
	}
	return envvars.FromServices(svcs)
}

// build returns the container's environment (image env first, then the kubelet's) in order.
func (e *envBuilder) build(c *v1.Container, img *ImageEntry) ([]string, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	set("PATH", img.Path)
	keys := make([]string, 0, len(img.Env))
	for k := range img.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, img.Env[k])
	}
	set("HOSTNAME", e.pod.Name)
	// The kubelet's own variables: service env first (may be overridden by the container).
	tmp := map[string]string{}
	svc := e.a.serviceEnv()
	svcKeys := make([]string, 0, len(svc))
	for k := range svc {
		svcKeys = append(svcKeys, k)
	}
	sort.Strings(svcKeys)
	var kOrder []string
	kset := func(k, v string) {
		if _, ok := tmp[k]; !ok {
			kOrder = append(kOrder, k)
		}
		tmp[k] = v
	}
	if e.pod.Spec.EnableServiceLinks == nil || *e.pod.Spec.EnableServiceLinks {
		for _, ev := range e.a.serviceLinks(e.ctx, e.pod.Namespace) {
			kset(ev.Name, ev.Value)
		}
	}
	for _, k := range svcKeys {
		kset(k, svc[k])
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			optional := ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional
			cm, err := e.configMap(ef.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, notFoundMsg(err, "configmap", ef.ConfigMapRef.Name)
			}
			ks := sortedKeys(cm.Data)
			for _, k := range ks {
				kset(ef.Prefix+k, cm.Data[k])
			}
		case ef.SecretRef != nil:
			optional := ef.SecretRef.Optional != nil && *ef.SecretRef.Optional
			s, err := e.secret(ef.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, notFoundMsg(err, "secret", ef.SecretRef.Name)
			}
			ks := make([]string, 0, len(s.Data))
			for k := range s.Data {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			for _, k := range ks {
				kset(ef.Prefix+k, string(s.Data[k]))
			}
		}
	}
	mapping := expansion.MappingFuncFor(tmp)
	for _, ev := range c.Env {
		val := ev.Value
		if ev.ValueFrom == nil {
			val = expansion.Expand(val, mapping)
		} else {
			var err error
			var skip bool
			val, skip, err = e.valueFrom(c, ev.ValueFrom)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
		}
		kset(ev.Name, val)
	}
	for _, k := range kOrder {
		set(k, tmp[k])
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// notFoundMsg is the error text the kubelet reports (the API's own NotFound message).
func notFoundMsg(err error, kind, name string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found", kind, name)
	}
	return err
}

func (e *envBuilder) valueFrom(c *v1.Container, vf *v1.EnvVarSource) (string, bool, error) {
	pod := e.pod
	switch {
	case vf.FieldRef != nil:
		switch vf.FieldRef.FieldPath {
		case "spec.nodeName":
			return pod.Spec.NodeName, false, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, false, nil
		case "status.hostIP", "status.podIP":
			return e.a.cfg.NodeIP, false, nil
		case "status.hostIPs", "status.podIPs":
			return e.a.cfg.NodeIP, false, nil
		}
		v, err := fieldpath.ExtractFieldPathAsString(pod, vf.FieldRef.FieldPath)
		return v, false, err
	case vf.ResourceFieldRef != nil:
		fs := vf.ResourceFieldRef.DeepCopy()
		if fs.ContainerName == "" {
			fs.ContainerName = c.Name
		}
		v, err := e.a.resourceValue(pod, fs)
		return v, false, err
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := e.configMap(ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, notFoundMsg(err, "configmap", ref.Name)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %v in ConfigMap %v/%v", ref.Key, pod.Namespace, ref.Name)
		}
		return v, false, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := e.secret(ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", true, nil
			}
			return "", false, notFoundMsg(err, "secret", ref.Name)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), false, nil
	}
	return "", true, nil
}

// commandLine is the program and arguments: the container's command/args over the image's
// entrypoint/cmd, with $(VAR) expanded from the container's environment.
func commandLine(c *v1.Container, img *ImageEntry, env []string) []string {
	m := map[string]string{}
	for _, kv := range env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	mapping := expansion.MappingFuncFor(m)
	var cmd, args []string
	for _, s := range c.Command {
		cmd = append(cmd, expansion.Expand(s, mapping))
	}
	for _, s := range c.Args {
		args = append(args, expansion.Expand(s, mapping))
	}
	switch {
	case len(cmd) > 0:
		return append(cmd, args...)
	case len(args) > 0:
		return append(append([]string{}, img.Entrypoint...), args...)
	default:
		return append(append([]string{}, img.Entrypoint...), img.Cmd...)
	}
}
