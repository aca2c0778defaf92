package nodeagent

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEnv(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "ns"}, Data: map[string]string{"A": "1", "B": "2"}}
	sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Data: map[string][]byte{"token": []byte("t0k")}}
	a, _, _ := testAgent(t, cm, sec)
	yes := true
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"app": "x"}},
		Spec: v1.PodSpec{NodeName: "n1", ServiceAccountName: "sa", Containers: []v1.Container{{Name: "c", Image: "busybox",
			Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("256Mi")}},
			EnvFrom:   []v1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}}},
			Env: []v1.EnvVar{
				{Name: "TOKEN", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Key: "token"}}},
				{Name: "GREETING", Value: "a=$(CFG_A) tok=$(TOKEN) $$(KEEP) $(UNKNOWN)"},
				{Name: "MEM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
				{Name: "SA", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
				{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "OPT", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}, Key: "k", Optional: &yes}}},
			}}}}}
	im, _ := ParseImageMap("images.yaml", []byte(testImages))
	img, _ := im.Resolve("busybox")
	eb := &envBuilder{a: a, ctx: context.Background(), pod: pod, secrets: map[string]*v1.Secret{}, configMaps: map[string]*v1.ConfigMap{}}
	env, err := eb.build(&pod.Spec.Containers[0], img.Entry)
	if err != nil {
		t.Fatal(err)
	}
	got := "\n" + strings.Join(env, "\n") + "\n"
	for _, want := range []string{"CFG_A=1", "CFG_B=2", "TOKEN=t0k", "GREETING=a=1 tok=t0k $(KEEP) $(UNKNOWN)", "MEM=256",
		"SA=sa", "IP=127.0.0.1", "KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=6443", "PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=p"} {
		if !strings.Contains(got, "\n"+want+"\n") {
			t.Errorf("env lacks %s:%s", want, got)
		}
	}
	if strings.Contains(got, "OPT=") {
		t.Error("optional missing configMap gave a variable")
	}
	argv := commandLine(&v1.Container{Command: []string{"echo", "$(CFG_A)"}, Args: []string{"$(TOKEN)"}}, img.Entry, env)
	if strings.Join(argv, " ") != "echo 1 t0k" {
		t.Errorf("argv %q", argv)
	}

	pod.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, Key: "missing"}}}}
	if _, err := eb.build(&pod.Spec.Containers[0], img.Entry); err == nil || err.Error() != "couldn't find key missing in ConfigMap ns/settings" {
		t.Errorf("got %v", err)
	}
	pod.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Key: "k"}}}}
	if _, err := eb.build(&pod.Spec.Containers[0], img.Entry); err == nil || err.Error() != `secret "absent" not found` {
		t.Errorf("got %v", err)
	}
}
