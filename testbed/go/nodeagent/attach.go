package nodeagent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/cri-client/pkg/logs"
	"k8s.io/klog/v2"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	streamremote "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
)

// /attach/{ns}/{pod}/{container}: the container's output from now on, and its stdin when the
// container has `stdin: true` (kubectl attach, kubectl run -i).
func (a *Agent) handleAttach(w http.ResponseWriter, r *http.Request) {
	parts := splitPath(r.URL.Path, "/attach/")
	if len(parts) < 3 {
		http.Error(w, "bad attach path", http.StatusBadRequest)
		return
	}
	opts, err := streamremote.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	streamremote.ServeAttach(w, r, &attacher{a: a, ns: parts[0]}, parts[1], "", parts[len(parts)-1], opts,
		4*time.Hour, 30*time.Second, remotecommandconsts.SupportedStreamingProtocols)
}

type attacher struct {
	a  *Agent
	ns string
}

func (at *attacher) AttachContainer(ctx context.Context, podName string, _ types.UID, container string, in io.Reader, out, errw io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	r, err := at.a.runningContainer(at.ns, podName, container)
	if err != nil {
		return err
	}
	if in != nil && r.stdin != nil {
		go func() {
			_, _ = io.Copy(r.stdin, in)
			if r.stdinOnce {
				_ = r.stdin.Close()
			}
		}()
	}
	now := metav1.NewTime(time.Now())
	o := logs.NewLogOptions(&v1.PodLogOptions{Follow: true, SinceTime: &now}, time.Now())
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errw != nil {
		stderr = errw
	}
	logger := klog.Background()
	return logs.ReadLogs(ctx, &logger, r.LogPath, r.ID, o, runtimeView{a: at.a}, stdout, stderr)
}

// /portForward/{ns}/{pod}: the pods share the node's network, so a forwarded port is the
// node's port.
func (a *Agent) handlePortForward(w http.ResponseWriter, r *http.Request) {
	parts := splitPath(r.URL.Path, "/portForward/")
	if len(parts) < 2 {
		http.Error(w, "bad portForward path", http.StatusBadRequest)
		return
	}
	if a.findPod(parts[0], parts[1]) == nil {
		http.NotFound(w, r)
		return
	}
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, r, forwarder{ip: a.cfg.NodeIP}, parts[1], "", opts,
		4*time.Hour, 30*time.Second, portforward.SupportedProtocols)
}

type forwarder struct{ ip string }

func (f forwarder) PortForward(ctx context.Context, _ string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(f.ip, strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("failed to connect to localhost:%d: %v", port, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	<-done
	return nil
}
