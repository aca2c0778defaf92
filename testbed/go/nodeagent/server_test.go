package nodeagent

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// TestExecProtocols runs a command in a running container over SPDY and over the
// v5.channel.k8s.io WebSocket protocol, as kube-apiserver may forward either.
func TestExecProtocols(t *testing.T) {
	a, cs, _ := testAgent(t)
	one := int64(1)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-x"},
		Spec: v1.PodSpec{NodeName: "n1", TerminationGracePeriodSeconds: &one, Containers: []v1.Container{{Name: "c", Image: "busybox",
			Command: []string{"sh", "-c", "while :; do sleep 1; done"}, Env: []v1.EnvVar{{Name: "GREETING", Value: "hello"}}}}}}
	_, _ = cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
	a.podChanged(pod)
	waitPod(t, cs, "ns", "p", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if err := a.listenLocal(a.ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/", a.handleExec)
	mux.HandleFunc("/containerLogs/", a.handleLogs)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	q := url.Values{"command": {"sh", "-c", "echo $GREETING pid=$$; cat /proc/1/cmdline; echo oops >&2; exit 3"}, "output": {"1"}, "error": {"1"}}
	u, _ := url.Parse(srv.URL + "/exec/ns/p/c?" + q.Encode())
	cfg := &rest.Config{Host: srv.URL}
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
	if err != nil {
		t.Fatal(err)
	}
	for name, ex := range map[string]remotecommand.Executor{"spdy": spdy, "websocket": ws} {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
		cancel()
		ee, ok := err.(utilexec.ExitError)
		if !ok || ee.ExitStatus() != 3 {
			t.Errorf("%s: error %v (%T)", name, err, err)
		}
		if !strings.HasPrefix(out.String(), "hello pid=") || !strings.Contains(out.String(), "while :") || errb.String() != "oops\n" {
			t.Errorf("%s: stdout %q stderr %q", name, out.String(), errb.String())
		}
	}
	a.mu.Lock()
	w := a.workers["uid-x"]
	a.mu.Unlock()
	w.remove()
	<-w.exited
}
