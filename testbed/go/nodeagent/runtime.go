package nodeagent

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run is one run of a container: one process tree in its own PID and mount namespaces.
type run struct {
	ID        string // containerID without the scheme
	Pid       int    // host pid of the container's PID 1
	StartedAt time.Time
	LogPath   string
	TermPath  string // host file bound at the container's terminationMessagePath
	Env       []string
	WorkDir   string

	done       chan struct{}
	FinishedAt time.Time
	ExitCode   int32
	StartError string // set when the container's program never started
	probes     probeState
	stdin      io.WriteCloser // the container's stdin (stdin: true), for attach
	stdinOnce  bool
	cmd        *exec.Cmd
}

// runSpec says how to start a run.
type runSpec struct {
	Dir       string // per-run host directory (rootfs, staging, spec, error file)
	TmpDir    string // host directory for the container's /tmp
	LogPath   string
	TermPath  string
	Init      initSpec
	Stdin     bool // keep a stdin pipe open (container stdin: true)
	StdinOnce bool
}

// Running says whether the run's process is alive.
func (r *run) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Done is closed when the run has ended and its logs are written.
func (r *run) Done() <-chan struct{} { return r.done }

func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startRun starts the container init in new PID, mount and UTS namespaces with the agent's own
// binary. onExit is called once the run has ended.
func startRun(self string, rs runSpec, onExit func()) (*run, error) {
	for _, d := range []string{rs.Dir, rs.TmpDir, filepath.Dir(rs.LogPath), filepath.Join(rs.Dir, "rootfs"), filepath.Join(rs.Dir, "staging")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	_ = os.Chmod(rs.TmpDir, 0o1777)
	if err := os.WriteFile(rs.TermPath, nil, 0o666); err != nil {
		return nil, err
	}
	spec := rs.Init
	spec.Rootfs = filepath.Join(rs.Dir, "rootfs")
	spec.Staging = filepath.Join(rs.Dir, "staging")
	spec.TmpDir = rs.TmpDir
	spec.ErrorFile = filepath.Join(rs.Dir, "start-error")
	_ = os.Remove(spec.ErrorFile)
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	specFile := filepath.Join(rs.Dir, "init.json")
	if err := os.WriteFile(specFile, data, 0o600); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(rs.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		logf.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	// fd 3 of the init is the write end of a pipe it leaves open until its exec (close-on-exec):
	// EOF here means the container's program runs, in its finished root.
	readyR, readyW, err := os.Pipe()
	if err != nil {
		logf.Close()
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return nil, err
	}
	cmd := exec.Command(self, "node-agent", "container-init", specFile)
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Stdin = nil
	var stdinW *os.File
	if rs.Stdin {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdin = pr
		stdinW = pw
		defer pr.Close()
	}
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	r := &run{ID: newContainerID(), LogPath: rs.LogPath, TermPath: rs.TermPath, Env: spec.Env, WorkDir: spec.WorkingDir,
		done: make(chan struct{}), cmd: cmd, stdinOnce: rs.StdinOnce}
	if stdinW != nil {
		r.stdin = stdinW
	}
	if err := cmd.Start(); err != nil {
		readyR.Close()
		readyW.Close()
		logf.Close()
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return nil, err
	}
	outW.Close()
	errW.Close()
	readyW.Close()
	ready := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, readyR); readyR.Close(); close(ready) }()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
	}
	r.Pid = cmd.Process.Pid
	r.StartedAt = time.Now()
	lw := &logWriter{f: logf}
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); lw.copy(outR, "stdout") }()
	go func() { defer copiers.Done(); lw.copy(errR, "stderr") }()
	go func() {
		err := cmd.Wait()
		finished := time.Now()
		// The kernel kills the rest of the PID namespace with its PID 1, so the pipes close;
		// wait a little for the last lines.
		ch := make(chan struct{})
		go func() { copiers.Wait(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(3 * time.Second):
			outR.Close()
			errR.Close()
		}
		logf.Close()
		if stdinW != nil {
			stdinW.Close()
		}
		r.FinishedAt = finished
		r.ExitCode = exitCode(err)
		if b, e := os.ReadFile(spec.ErrorFile); e == nil && len(b) > 0 && r.ExitCode == 128 {
			r.StartError = string(b)
		}
		close(r.done)
		if onExit != nil {
			onExit()
		}
	}()
	return r, nil
}

func exitCode(err error) int32 {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				return 128 + int32(ws.Signal())
			}
			return int32(ws.ExitStatus())
		}
	}
	return 128
}

// Signal sends a signal to the container's PID 1 (from outside its namespace, as a runtime
// does: only SIGKILL and signals PID 1 handles are delivered).
func (r *run) Signal(sig syscall.Signal) {
	if r.Running() {
		_ = syscall.Kill(r.Pid, sig)
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL, and waits for the end.
func (r *run) Stop(grace time.Duration) {
	if !r.Running() {
		return
	}
	r.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		return
	case <-time.After(grace):
	}
	r.Signal(syscall.SIGKILL)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
}

// logWriter writes a container's output in the CRI log format the kubelet reads:
// "<RFC3339Nano time> <stream> <F|P> <content>".
type logWriter struct {
	mu sync.Mutex
	f  *os.File
}

const maxLogLine = 16 * 1024

func (w *logWriter) copy(r io.ReadCloser, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			tag := "F"
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			} else if err == bufio.ErrBufferFull {
				tag = "P"
			}
			w.write(stream, tag, line)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func (w *logWriter) write(stream, tag string, content []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	_, _ = fmt.Fprintf(w.f, "%s %s %s %s\n", ts, stream, tag, content)
}

// tailLogMessage is the termination message of FallbackToLogsOnError: the last lines of the
// container's log, at most maxBytes.
func tailLogMessage(path string, lines, maxBytes int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		// "<time> <stream> <tag> <content>"
		fs := strings.SplitN(l, " ", 4)
		if len(fs) < 4 {
			continue
		}
		if fs[2] == "P" {
			out = append(out, fs[3])
			continue
		}
		out = append(out, fs[3]+"\n")
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	msg := strings.Join(out, "")
	if len(msg) > maxBytes {
		msg = msg[len(msg)-maxBytes:]
	}
	return msg
}
