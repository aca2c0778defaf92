package nodeagent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// initSpec is what the agent hands to the container init (the first process of a container's
// PID and mount namespaces) in a JSON file.
type initSpec struct {
	Argv       []string    `json:"argv"`
	Env        []string    `json:"env"`
	WorkingDir string      `json:"workingDir"`
	Hostname   string      `json:"hostname"`
	Rootfs     string      `json:"rootfs"`  // empty host directory: the container's root is built here
	Staging    string      `json:"staging"` // empty host directory for temporary binds
	TmpDir     string      `json:"tmpDir"`  // host directory bound at /tmp
	Mounts     []initMount `json:"mounts"`
	ReadOnly   bool        `json:"readOnlyRootFilesystem,omitempty"`
	ErrorFile  string      `json:"errorFile"`
}

// initMount binds a host file or directory at a path of the container.
type initMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// containerInit runs as PID 1 of a fresh PID and mount namespace: it builds the container's
// root (the host's directories bound into a tmpfs, a fresh /proc, a private /dev and /tmp, the
// volumes), pivots into it and execs the container's program, which so becomes PID 1.
// A failure is written to the error file and exits 128, which the agent reports as StartError.
func containerInit(specFile string) int {
	data, err := os.ReadFile(specFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "container init:", err)
		return 128
	}
	syscall.CloseOnExec(3) // the agent's readiness pipe: closed by the exec of the program
	var s initSpec
	if err := json.Unmarshal(data, &s); err != nil {
		fmt.Fprintln(os.Stderr, "container init:", err)
		return 128
	}
	if err := s.run(); err != nil {
		_ = os.WriteFile(s.ErrorFile, []byte(err.Error()), 0o600)
		fmt.Fprintln(os.Stderr, err)
		return 128
	}
	return 0 // not reached: run execs
}

func (s *initSpec) run() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %v", err)
	}
	if s.Hostname != "" {
		_ = syscall.Sethostname([]byte(s.Hostname))
	}
	errFile, err := os.OpenFile(s.ErrorFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	b := &rootBuilder{root: s.Rootfs, staging: s.Staging, private: map[string]bool{"/": true, "/dev": true, "/tmp": true}}
	if err := b.build(s); err != nil {
		return err
	}
	if err := os.Chdir(s.Rootfs); err != nil {
		return err
	}
	if err := syscall.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %v", err)
	}
	if err := syscall.Unmount(".", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host root: %v", err)
	}
	wd := s.WorkingDir
	if wd == "" {
		wd = "/"
	}
	if err := os.Chdir(wd); err != nil {
		return fmt.Errorf("chdir to cwd (%q) set in config.json failed: %v", wd, err)
	}
	path := lookEnv(s.Env, "PATH")
	prog, err := lookPath(s.Argv[0], path)
	if err != nil {
		msg := fmt.Sprintf("failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: %v: unknown", err)
		_, _ = errFile.WriteString(msg)
		return fmt.Errorf("%s", msg)
	}
	_ = errFile.Close()
	err = syscall.Exec(prog, s.Argv, s.Env)
	return fmt.Errorf("failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: exec: %q: %v: unknown", s.Argv[0], err)
}

func lookEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			v = kv[len(key)+1:]
		}
	}
	return v
}

// lookPath resolves a program the way runc does: a name with a slash as is, else along PATH.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("exec: %q: %v", name, err)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("stat %s: no such file or directory", p)
		}
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("is a directory")
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("permission denied")
	}
	return nil
}

// sortMounts orders mounts so that a parent path is mounted before the paths inside it.
func sortMounts(ms []initMount) {
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(filepath.Clean(ms[i].Target), "/") < strings.Count(filepath.Clean(ms[j].Target), "/")
	})
}
