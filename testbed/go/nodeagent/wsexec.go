package nodeagent

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/apiserver/pkg/util/proxy"
)

// The kubelet's streaming server speaks SPDY and the v1–v4 WebSocket protocols; kube-apiserver
// translates a client's v5.channel.k8s.io WebSocket into SPDY before it reaches a kubelet. So that
// a v5 WebSocket sent straight to the agent works too, the agent translates it the same way,
// with the apiserver's own translator, to its SPDY handler on a private unix socket.

func (a *Agent) execSocketPath() string {
	p := filepath.Join(a.cfg.Root, "exec.sock")
	if len(p) > 100 { // beyond sun_path: an abstract socket, named after the agent's process
		return "@node-agent-exec-" + strconv.Itoa(os.Getpid())
	}
	return p
}

// listenLocal serves the exec handler (no authentication: root-only unix socket) for the
// WebSocket translator.
func (a *Agent) listenLocal(ctx context.Context) error {
	p := a.execSocketPath()
	if !strings.HasPrefix(p, "@") {
		_ = os.Remove(p)
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(p, "@") {
		_ = os.Chmod(p, 0o600)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/", a.handleExec)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return nil
}

func wantsV5WebSocket(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, h := range r.Header.Values("Sec-Websocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if strings.TrimSpace(p) == remotecommandconsts.StreamProtocolV5Name {
				return true
			}
		}
	}
	return false
}

// translateV5 serves a v5.channel.k8s.io WebSocket exec by translating it to SPDY.
func (a *Agent) translateV5(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	loc := &url.URL{Scheme: "http", Host: "node-agent", Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	sock := a.execSocketPath()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	opts := proxy.Options{Stdin: q.Get("stdin") == "1" || q.Get("stdin") == "true",
		Stdout: q.Get("output") == "1" || q.Get("stdout") == "1" || q.Get("stdout") == "true",
		Stderr: q.Get("error") == "1" || q.Get("stderr") == "1" || q.Get("stderr") == "true",
		Tty:    q.Get("tty") == "1" || q.Get("tty") == "true"}
	proxy.NewStreamTranslatorHandler(loc, tr, 0, opts).ServeHTTP(w, r)
}
