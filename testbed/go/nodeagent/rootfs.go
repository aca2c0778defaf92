package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// rootBuilder builds a container's root directory without touching the host's files: a tmpfs
// holding a bind of each top-level host directory, a fresh /proc, a private /dev and /tmp. A
// mount target whose parents do not exist is made by "shadowing" its nearest existing ancestor:
// a tmpfs replaces the ancestor inside the container and every entry of it is bound back, so the
// missing directories are created in the container's private tmpfs only.
type rootBuilder struct {
	root    string          // host path of the container root
	staging string          // host scratch directory
	private map[string]bool // container directories whose new entries stay private
	nstage  int
	overlay map[string]bool // top-level directories with a private writable layer
	rebound []string        // host submounts bound back inside those directories
	volumes map[string]bool // mount targets of volumes
}

var skipTop = map[string]bool{"proc": true, "dev": true, "sys": true, "tmp": true}

func (b *rootBuilder) build(s *initSpec) error {
	if err := syscall.Mount("tmpfs", b.root, "tmpfs", 0, "mode=755"); err != nil {
		return fmt.Errorf("mounting the container root: %v", err)
	}
	if err := b.replicate("/", b.root, skipTop); err != nil {
		return err
	}
	b.overlayTops()
	// /proc of the container's PID namespace.
	if err := mkdirMount("proc", filepath.Join(b.root, "proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := mkdirMount("/sys", filepath.Join(b.root, "sys"), "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	if err := b.buildDev(); err != nil {
		return err
	}
	if err := mkdirMount(s.TmpDir, filepath.Join(b.root, "tmp"), "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	mounts := append([]initMount(nil), s.Mounts...)
	sortMounts(mounts)
	for _, m := range mounts {
		if err := b.mount(m); err != nil {
			return fmt.Errorf("mounting %s at %s: %v", m.Source, m.Target, err)
		}
	}
	if s.WorkingDir != "" {
		if _, err := b.ensure(s.WorkingDir, true); err != nil {
			return fmt.Errorf("creating workingDir %s: %v", s.WorkingDir, err)
		}
	}
	if s.ReadOnly {
		return b.readOnlyRoot()
	}
	return nil
}

// readOnlyRoot is readOnlyRootFilesystem: the root, every top-level directory and /tmp become
// read-only mounts; /dev, /proc, /sys and the volumes keep their own modes.
func (b *rootBuilder) readOnlyRoot() error {
	ro := func(p string) error {
		return syscall.Mount("", p, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, "")
	}
	entries, err := os.ReadDir(b.root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if n == "dev" || n == "proc" || n == "sys" || !e.IsDir() || b.volumes["/"+n] {
			continue
		}
		_ = ro(filepath.Join(b.root, n)) // not a mount point: covered by the root below
	}
	if err := ro(b.root); err != nil {
		return fmt.Errorf("read-only root: %v", err)
	}
	return nil
}

func mkdirMount(src, dst, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %v", src, dst, err)
	}
	return nil
}

func (b *rootBuilder) buildDev() error {
	dev := filepath.Join(b.root, "dev")
	if err := mkdirMount("tmpfs", dev, "tmpfs", syscall.MS_NOSUID, "mode=755"); err != nil {
		return err
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if _, err := os.Stat("/dev/" + n); err != nil {
			continue
		}
		if err := bindFile("/dev/"+n, filepath.Join(dev, n)); err != nil {
			return err
		}
	}
	if err := mkdirMount("/dev/pts", filepath.Join(dev, "pts"), "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	if err := mkdirMount("shm", filepath.Join(dev, "shm"), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777"); err != nil {
		return err
	}
	links := map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for n, t := range links {
		if err := os.Symlink(t, filepath.Join(dev, n)); err != nil {
			return err
		}
	}
	return nil
}

func bindFile(src, dst string) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_ = f.Close()
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %v", src, dst, err)
	}
	return nil
}

// replicate fills the (private, empty) directory dst with binds of the entries of src.
func (b *rootBuilder) replicate(src, dst string, skip map[string]bool) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if skip[name] {
			continue
		}
		s, d := filepath.Join(src, name), filepath.Join(dst, name)
		st, err := os.Lstat(s)
		if err != nil {
			continue
		}
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(s)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, d); err != nil {
				return err
			}
		case st.IsDir():
			if err := os.Mkdir(d, st.Mode().Perm()); err != nil {
				return err
			}
			if err := syscall.Mount(s, d, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
				return fmt.Errorf("bind %s: %v", s, err)
			}
		case st.Mode().IsRegular():
			if err := bindFile(s, d); err != nil {
				return err
			}
		default: // sockets, fifos, devices: bind them too
			if err := bindFile(s, d); err != nil {
				continue
			}
		}
	}
	return nil
}

// shadow makes the container directory cpath private: its current content is bound back into a
// tmpfs mounted over it.
func (b *rootBuilder) shadow(cpath string) error {
	host := filepath.Join(b.root, cpath)
	st, err := os.Stat(host)
	if err != nil {
		return err
	}
	b.nstage++
	stage := filepath.Join(b.staging, strconv.Itoa(b.nstage))
	if err := mkdirMount(host, stage, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	mode := fmt.Sprintf("mode=%o", st.Mode().Perm())
	if err := syscall.Mount("tmpfs", host, "tmpfs", 0, mode); err != nil {
		return fmt.Errorf("tmpfs on %s: %v", cpath, err)
	}
	if err := b.replicate(stage, host, nil); err != nil {
		return err
	}
	_ = syscall.Unmount(stage, syscall.MNT_DETACH)
	b.private[cpath] = true
	return nil
}

// resolve follows the symlinks of a container path inside the container root. It returns the
// resolved container path of the longest existing prefix and the components still missing.
func (b *rootBuilder) resolve(cpath string) (string, []string, error) {
	todo := strings.Split(strings.Trim(filepath.Clean(cpath), "/"), "/")
	cur := "/"
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		if c == "" || c == "." {
			todo = todo[1:]
			continue
		}
		if c == ".." {
			cur = filepath.Dir(cur)
			todo = todo[1:]
			continue
		}
		next := filepath.Join(cur, c)
		st, err := os.Lstat(filepath.Join(b.root, next))
		if os.IsNotExist(err) {
			return cur, todo, nil
		}
		if err != nil {
			return "", nil, err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			hops++
			if hops > 40 {
				return "", nil, fmt.Errorf("too many levels of symbolic links")
			}
			t, err := os.Readlink(filepath.Join(b.root, next))
			if err != nil {
				return "", nil, err
			}
			rest := todo[1:]
			if filepath.IsAbs(t) {
				cur = "/"
			}
			todo = append(strings.Split(strings.Trim(t, "/"), "/"), rest...)
			continue
		}
		cur = next
		todo = todo[1:]
	}
	return cur, nil, nil
}

// ensure makes the container path exist (a directory, or an empty file) and returns the host
// path of it inside the container root.
func (b *rootBuilder) ensure(cpath string, dir bool) (string, error) {
	cur, missing, err := b.resolve(cpath)
	if err != nil {
		return "", err
	}
	if len(missing) == 0 {
		return filepath.Join(b.root, cur), nil
	}
	if !b.private[cur] && !b.inOverlay(cur) {
		if err := b.shadow(cur); err != nil {
			return "", err
		}
	}
	for i, c := range missing {
		cur = filepath.Join(cur, c)
		host := filepath.Join(b.root, cur)
		if i == len(missing)-1 && !dir {
			f, err := os.OpenFile(host, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return "", err
			}
			_ = f.Close()
		} else if err := os.Mkdir(host, 0o755); err != nil && !os.IsExist(err) {
			return "", err
		}
		b.private[cur] = true
	}
	return filepath.Join(b.root, cur), nil
}

func (b *rootBuilder) mount(m initMount) error {
	st, err := os.Stat(m.Source)
	if err != nil {
		return err
	}
	target, err := b.ensure(m.Target, st.IsDir())
	if err != nil {
		return err
	}
	if err := syscall.Mount(m.Source, target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return err
	}
	// A mounted volume is the volume's own directory: entries created in it go to the volume.
	b.private[m.Target] = true
	if b.volumes == nil {
		b.volumes = map[string]bool{}
	}
	b.volumes[filepath.Clean(m.Target)] = true
	if m.ReadOnly {
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("read-only remount: %v", err)
		}
	}
	return nil
}
