package nodeagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
	"k8s.io/klog/v2"
	streamremote "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// ctrSnap is what the API server may read of a container while the worker runs it.
type ctrSnap struct {
	cur     *run
	curLog  string
	prevLog string
	waiting string
}

func (w *podWorker) publish() {
	snap := map[string]ctrSnap{}
	for _, c := range w.ctrs {
		s := ctrSnap{cur: c.cur, curLog: c.curLog, prevLog: c.prevLog}
		if c.waiting != nil {
			s.waiting = c.waiting.Reason
		}
		snap[c.spec.Name] = s
	}
	w.mu.Lock()
	w.snap = snap
	w.mu.Unlock()
}

func (a *Agent) findPod(ns, name string) *podWorker {
	a.mu.Lock()
	defer a.mu.Unlock()
	// A pod deleted and created again under the same name (a restarted bridge's next attempt,
	// a Job's pod) can have two workers here for a moment: like the kubelet's pod manager,
	// which maps a full name to the newest pod, answer for the newest one.
	// Creation times have second precision: between two of the same second, the one not being
	// deleted is the current one.
	var found *podWorker
	var newest time.Time
	foundDeleting := false
	for _, w := range a.workers {
		p, removed := w.current()
		if removed || p.Namespace != ns || p.Name != name {
			continue
		}
		created, deleting := p.CreationTimestamp.Time, p.DeletionTimestamp != nil
		newer := created.After(newest) || (created.Equal(newest) && foundDeleting && !deleting)
		if found == nil || newer {
			found, newest, foundDeleting = w, created, deleting
		}
	}
	return found
}

// serve starts the kubelet HTTPS API.
func (a *Agent) serve(ctx context.Context) (<-chan error, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/containerLogs/", a.authn(a.handleLogs))
	mux.HandleFunc("/exec/", a.authn(a.handleExec))
	mux.HandleFunc("/attach/", a.authn(a.handleAttach))
	mux.HandleFunc("/portForward/", a.authn(a.handlePortForward))
	if err := a.listenLocal(ctx); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(a.cfg.NodeIP, strconv.Itoa(a.cfg.Port)))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	if a.cfg.TLSCert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		cert, err := tls.LoadX509KeyPair(a.cfg.TLSCert, a.cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		if a.cfg.ClientCA != "" {
			pem, err := os.ReadFile(a.cfg.ClientCA)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificate in %s", a.cfg.ClientCA)
			}
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
		ln = tls.NewListener(ln, cfg)
	}
	go func() { errc <- srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return errc, nil
}

// authn requires a client certificate signed by --client-ca-file (kube-apiserver's
// kubelet-client certificate). Authorization (the kubelet's SubjectAccessReview) is not done.
func (a *Agent) authn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.ClientCA != "" && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func splitPath(p, prefix string) []string {
	return strings.Split(strings.Trim(strings.TrimPrefix(p, prefix), "/"), "/")
}

type runtimeapiService = internalapi.RuntimeService

// runtimeView answers the CRI log reader's question "is this container still running?".
type runtimeView struct {
	runtimeapiService
	a *Agent
}

func (v runtimeView) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	v.a.mu.Lock()
	rr, ok := v.a.runs[id]
	v.a.mu.Unlock()
	st := runtimeapi.ContainerState_CONTAINER_EXITED
	if ok && rr.r.Running() {
		st = runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: id, State: st}}, nil
}

func (a *Agent) handleLogs(w http.ResponseWriter, r *http.Request) {
	parts := splitPath(r.URL.Path, "/containerLogs/")
	if len(parts) != 3 {
		http.Error(w, `{"message": "Missing podID."}`, http.StatusBadRequest)
		return
	}
	ns, podName, ctr := parts[0], parts[1], parts[2]
	query := r.URL.Query()
	if tail := query.Get("tail"); tail != "" {
		query["tailLines"] = []string{tail}
		if tail == "all" {
			delete(query, "tailLines")
		}
	}
	opts, err := parseLogOptions(query)
	if err != nil {
		http.Error(w, `{"message": "Unable to decode query."}`, http.StatusBadRequest)
		return
	}
	pw := a.findPod(ns, podName)
	if pw == nil {
		http.Error(w, fmt.Sprintf("pod %q does not exist", podName), http.StatusNotFound)
		return
	}
	pw.mu.Lock()
	snap, ok := pw.snap[ctr]
	pw.mu.Unlock()
	if !ok {
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", ctr, podName), http.StatusNotFound)
		return
	}
	path, id := snap.curLog, ""
	if snap.cur != nil {
		id = snap.cur.ID
	}
	if opts.Previous {
		if snap.prevLog == "" {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", ctr, podName), http.StatusBadRequest)
			return
		}
		path, id = snap.prevLog, ""
	}
	if path == "" {
		reason := snap.waiting
		if reason == "" {
			reason = "ContainerCreating"
		}
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start: %s", ctr, podName, reason), http.StatusBadRequest)
		return
	}
	if id == "" {
		opts.Follow = false
	}
	fw := &flushWriter{w: w}
	if f, ok := w.(http.Flusher); ok {
		fw.f = f
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	logger := klog.Background()
	var stdout, stderr io.Writer = fw, fw
	if opts.Stream != nil {
		switch *opts.Stream {
		case v1.LogStreamStdout:
			stderr = nil
		case v1.LogStreamStderr:
			stdout = nil
		}
	}
	if err := logs.ReadLogs(r.Context(), &logger, path, id, logs.NewLogOptions(opts, time.Now()), runtimeView{a: a}, stdout, stderr); err != nil {
		klog.V(2).InfoS("reading logs", "err", err)
	}
}

// parseLogOptions reads the PodLogOptions of a containerLogs query.
func parseLogOptions(q url.Values) (*v1.PodLogOptions, error) {
	o := &v1.PodLogOptions{}
	b := func(k string) (bool, error) {
		v := q.Get(k)
		if v == "" {
			return false, nil
		}
		return strconv.ParseBool(v)
	}
	i := func(k string) (*int64, error) {
		v := q.Get(k)
		if v == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return &n, err
	}
	var err error
	if o.Follow, err = b("follow"); err != nil {
		return nil, err
	}
	if o.Previous, err = b("previous"); err != nil {
		return nil, err
	}
	if o.Timestamps, err = b("timestamps"); err != nil {
		return nil, err
	}
	if o.SinceSeconds, err = i("sinceSeconds"); err != nil {
		return nil, err
	}
	if o.TailLines, err = i("tailLines"); err != nil {
		return nil, err
	}
	if o.LimitBytes, err = i("limitBytes"); err != nil {
		return nil, err
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, err
		}
		mt := metav1.NewTime(t)
		o.SinceTime = &mt
	}
	if v := q.Get("stream"); v != "" && v != v1.LogStreamAll {
		o.Stream = &v
	}
	return o, nil
}

type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (f *flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if f.f != nil {
		f.f.Flush()
	}
	return n, err
}

func (a *Agent) handleExec(w http.ResponseWriter, r *http.Request) {
	parts := splitPath(r.URL.Path, "/exec/")
	if len(parts) < 3 {
		http.Error(w, "bad exec path", http.StatusBadRequest)
		return
	}
	ns, podName, ctr := parts[0], parts[1], parts[len(parts)-1]
	var uid types.UID
	if len(parts) == 4 {
		uid = types.UID(parts[2])
	}
	if wantsV5WebSocket(r) {
		a.translateV5(w, r)
		return
	}
	opts, err := streamremote.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := r.URL.Query()[v1.ExecCommandParam]
	streamremote.ServeExec(w, r, &executor{a: a, ns: ns}, podName, uid, ctr, cmd, opts,
		4*time.Hour, 30*time.Second, remotecommandconsts.SupportedStreamingProtocols)
}

// runningContainer is the current run of a container that exec and attach may enter.
func (a *Agent) runningContainer(ns, podName, container string) (*run, error) {
	pw := a.findPod(ns, podName)
	if pw == nil {
		return nil, fmt.Errorf("pod %q not found", podName)
	}
	pw.mu.Lock()
	snap, ok := pw.snap[container]
	pw.mu.Unlock()
	if !ok || snap.cur == nil || !snap.cur.Running() {
		return nil, fmt.Errorf("container not found (%q)", container)
	}
	return snap.cur, nil
}

// executor runs a command inside a container's namespaces with nsenter.
type executor struct {
	a  *Agent
	ns string
}

func (e *executor) ExecInContainer(ctx context.Context, podName string, _ types.UID, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	r, err := e.a.runningContainer(e.ns, podName, container)
	if err != nil {
		return err
	}
	args := []string{"--target", strconv.Itoa(r.Pid), "--pid", "--mount", "--uts", "--root", "--wd"}
	args = append(append(args, "--"), cmd...)
	c := exec.CommandContext(ctx, "nsenter", args...)
	c.Env = r.Env
	if tty {
		err = runWithTTY(c, in, out, resize)
	} else {
		if in != nil {
			c.Stdin = in
		}
		c.Stdout, c.Stderr = out, errw
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		err = c.Run()
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", ee.ExitCode()), Code: ee.ExitCode()}
	}
	return err
}

// insecureTLS is the kubelet's HTTPS probe client: it does not verify the certificate.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec

// runWithTTY runs the command on a pseudo-terminal (kubectl exec -t), following resizes.
func runWithTTY(c *exec.Cmd, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	ptmx, err := pty.Start(c)
	if err != nil {
		return err
	}
	defer ptmx.Close()
	go func() {
		for size := range resize {
			_ = pty.Setsize(ptmx, &pty.Winsize{Rows: size.Height, Cols: size.Width})
		}
	}()
	if in != nil {
		go func() { _, _ = io.Copy(ptmx, in) }()
	}
	if out != nil {
		go func() { _, _ = io.Copy(out, ptmx) }()
	}
	return c.Wait()
}
