package nodeagent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeState is what the probes of one run have found.
type probeState struct {
	started atomic.Bool // startup probe passed (or none)
	ready   atomic.Bool // readiness probe passed (or none)
}

// startProbes runs the container's startup, liveness and readiness probes for one run, as the
// kubelet's prober does: a liveness or startup failure past failureThreshold kills the run (the
// restart policy then applies); readiness decides the container's ready flag.
func (w *podWorker) startProbes(pod *v1.Pod, c *ctrState, r *run) {
	spec := c.spec
	r.probes.started.Store(spec.StartupProbe == nil)
	r.probes.ready.Store(spec.ReadinessProbe == nil)
	if spec.StartupProbe == nil && spec.LivenessProbe == nil && spec.ReadinessProbe == nil {
		return
	}
	go func() {
		if p := spec.StartupProbe; p != nil {
			if !w.probeLoop(pod, c, r, p, "Startup", func(ok bool) bool {
				if ok {
					r.probes.started.Store(true)
					w.poke()
					return false
				}
				return true
			}) {
				return
			}
		}
		done := make(chan struct{})
		if p := spec.ReadinessProbe; p != nil {
			go func() {
				defer close(done)
				w.probeLoop(pod, c, r, p, "Readiness", func(ok bool) bool {
					if r.probes.ready.Swap(ok) != ok {
						w.poke()
					}
					return true
				})
			}()
		} else {
			close(done)
		}
		if p := spec.LivenessProbe; p != nil {
			w.probeLoop(pod, c, r, p, "Liveness", func(bool) bool { return true })
		}
		<-done
	}()
}

// probeLoop probes until the run ends or onResult returns false. A failure past the
// threshold of a startup or liveness probe kills the run; it then returns false.
func (w *podWorker) probeLoop(pod *v1.Pod, c *ctrState, r *run, p *v1.Probe, kind string, onResult func(bool) bool) bool {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	failureThreshold := max(p.FailureThreshold, 1)
	successThreshold := max(p.SuccessThreshold, 1)
	select {
	case <-r.done:
		return false
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	}
	fails, oks := int32(0), int32(0)
	for {
		err := w.probeOnce(pod, c, r, p, timeout)
		if !r.Running() {
			return false
		}
		if err == nil {
			fails = 0
			oks++
			if oks >= successThreshold || kind != "Readiness" {
				if !onResult(true) {
					return true
				}
			}
		} else {
			oks = 0
			fails++
			w.a.event(w.ref(c), v1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %v", kind, err))
			if fails >= failureThreshold {
				if kind == "Readiness" {
					onResult(false)
				} else {
					w.a.event(w.ref(c), v1.EventTypeNormal, "Killing",
						fmt.Sprintf("Container %s failed %s probe, will be restarted", c.spec.Name, strings.ToLower(kind)))
					grace := w.grace(pod)
					if p.TerminationGracePeriodSeconds != nil {
						grace = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
					}
					r.Stop(grace)
					return false
				}
			}
		}
		select {
		case <-r.done:
			return false
		case <-time.After(period):
		}
	}
}

func (w *podWorker) probeOnce(pod *v1.Pod, c *ctrState, r *run, p *v1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(w.ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		args := append([]string{"--target", strconv.Itoa(r.Pid), "--pid", "--mount", "--uts", "--root", "--wd", "--"}, p.Exec.Command...)
		cmd := exec.CommandContext(ctx, "nsenter", args...)
		cmd.Env = r.Env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			return fmt.Errorf("command timed out after %s", timeout)
		}
		if err != nil {
			return fmt.Errorf("%s", strings.TrimSpace(string(out)))
		}
		return nil
	case p.HTTPGet != nil:
		port, err := resolvePort(p.HTTPGet.Port, c.spec)
		if err != nil {
			return err
		}
		host := p.HTTPGet.Host
		if host == "" {
			host = w.a.cfg.NodeIP
		}
		scheme := strings.ToLower(string(p.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := p.HTTPGet.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "kube-probe/1.35")
		for _, h := range p.HTTPGet.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return fmt.Errorf("Get %q: %v", url, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c.spec)
		if err != nil {
			return err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = w.a.cfg.NodeIP
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("dial tcp %s: %v", net.JoinHostPort(host, strconv.Itoa(port)), err)
		}
		conn.Close()
		return nil
	}
	return nil // gRPC probes are not supported: they pass
}

var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: insecureTLS()},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", p.StrVal, c.Name)
}
