package nodeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "node-agent" {
		os.Exit(Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func readLogContent(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fs := strings.SplitN(l, " ", 4)
		if len(fs) == 4 {
			out = append(out, fs[1]+":"+fs[3])
		}
	}
	return strings.Join(out, "\n")
}

func startTestRun(t *testing.T, argv []string, mounts []initMount) *run {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containers get their own PID and mount namespaces (run go test as root, as make test does)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rs := runSpec{Dir: filepath.Join(dir, "run"), TmpDir: filepath.Join(dir, "tmp"), LogPath: filepath.Join(dir, "logs", "0.log"),
		TermPath: filepath.Join(dir, "term"),
		Init: initSpec{Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}, Hostname: "mypod",
			Mounts: append(mounts, initMount{Source: filepath.Join(dir, "term"), Target: "/dev/termination-log"})}}
	r, err := startRun(self, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(20 * time.Second):
		r.Stop(time.Second)
		t.Fatal("container did not end")
	}
	return r
}

func TestContainerIsolation(t *testing.T) {
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "key"), []byte("secret-value"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `echo pid=$$; echo host=$(hostname); cat /nonexistent-top/deep/key; echo; cat /var/run/secrets/test/key; echo;
ls /proc | grep -c '^[0-9]' ; echo x > /tmp/private; echo x > /etc/nodeagent-test-private; mkdir -p /opt/nodeagent-test/dir; echo bye > /dev/termination-log; echo err >&2; exit 3`
	r := startTestRun(t, []string{"sh", "-c", script}, []initMount{
		{Source: vol, Target: "/nonexistent-top/deep"},
		{Source: vol, Target: "/var/run/secrets/test", ReadOnly: true},
	})
	if r.ExitCode != 3 || r.StartError != "" {
		t.Fatalf("exit %d, start error %q", r.ExitCode, r.StartError)
	}
	logs := readLogContent(t, r.LogPath)
	for _, want := range []string{"stdout:pid=1", "stdout:host=mypod", "stdout:secret-value", "stderr:err"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if _, err := os.Stat("/nonexistent-top"); err == nil {
		t.Error("the host got /nonexistent-top")
	}
	if _, err := os.Stat("/var/run/secrets/test"); err == nil {
		t.Error("the host got /var/run/secrets/test")
	}
	for _, p := range []string{"/etc/nodeagent-test-private", "/opt/nodeagent-test"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the container wrote %s on the host", p)
		}
	}
	if _, err := os.Stat("/tmp/private"); err == nil {
		t.Error("/tmp is not private")
	}
	if b, _ := os.ReadFile(r.TermPath); string(b) != "bye\n" {
		t.Errorf("termination log %q", b)
	}
}

func TestContainerStartError(t *testing.T) {
	r := startTestRun(t, []string{"no-such-program"}, nil)
	if r.ExitCode != 128 || !strings.Contains(r.StartError, `exec: "no-such-program": executable file not found in $PATH`) {
		t.Fatalf("exit %d, start error %q", r.ExitCode, r.StartError)
	}
}

func TestKillOneHitsContainerInit(t *testing.T) {
	// PID 1 ignores SIGTERM without a handler; with a trap, `kill 1` ends the container.
	r := startTestRun(t, []string{"sh", "-c", `trap 'echo got-term; exit 7' TERM; (sleep 0.3; kill -TERM 1) & while :; do sleep 0.1; done`}, nil)
	if r.ExitCode != 7 {
		t.Fatalf("exit %d", r.ExitCode)
	}
}

func TestReadOnlyRootFilesystem(t *testing.T) {
	vol := t.TempDir()
	self, _ := os.Executable()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containers get their own PID and mount namespaces (run go test as root, as make test does)")
	}
	script := `echo x > /etc/ro-test 2>/dev/null && echo etc-writable; echo x > /tmp/ro-test 2>/dev/null && echo tmp-writable; echo x > /data/f && echo vol-writable; echo x > /dev/termination-log && echo term-writable`
	rs := runSpec{Dir: filepath.Join(dir, "run"), TmpDir: filepath.Join(dir, "tmp"), LogPath: filepath.Join(dir, "0.log"), TermPath: filepath.Join(dir, "term"),
		Init: initSpec{Argv: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"}, ReadOnly: true,
			Mounts: []initMount{{Source: vol, Target: "/data"}, {Source: filepath.Join(dir, "term"), Target: "/dev/termination-log"}}}}
	r, err := startRun(self, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	logs := readLogContent(t, r.LogPath)
	if strings.Contains(logs, "etc-writable") || strings.Contains(logs, "tmp-writable") ||
		!strings.Contains(logs, "vol-writable") || !strings.Contains(logs, "term-writable") {
		t.Errorf("logs %q (start error %q)", logs, r.StartError)
	}
}
