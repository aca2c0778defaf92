package nodeagent

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// overlayTops gives each top-level host directory a private writable layer, as a container
// image's writable layer: the host's files are read through an overlay whose upper layer is a
// tmpfs of the container's own mount namespace, so what a container writes outside its volumes
// never reaches the host. The directory that holds the agent's --root cannot be an overlay
// lower layer of its own upper layer and stays a plain bind; so does any directory whose
// overlay the kernel refuses. Host mounts below an overlaid directory are bound back.
func (b *rootBuilder) overlayTops() {
	b.overlay = map[string]bool{}
	layers := filepath.Join(b.staging, "layers")
	if err := mkdirMount("tmpfs", layers, "tmpfs", 0, "mode=700"); err != nil {
		return
	}
	mounts := hostMountPoints()
	entries, err := os.ReadDir(b.root)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		host := "/" + name
		st, err := os.Lstat(host)
		if err != nil || !st.IsDir() || skipTop[name] {
			continue
		}
		if strings.HasPrefix(b.root+"/", host+"/") {
			continue // holds the agent's root
		}
		target := filepath.Join(b.root, name)
		upper, work := filepath.Join(layers, "u", name), filepath.Join(layers, "w", name)
		if os.MkdirAll(upper, 0o755) != nil || os.MkdirAll(work, 0o755) != nil {
			continue
		}
		_ = os.Chmod(upper, st.Mode().Perm())
		// Replace the plain bind made by replicate with the overlay.
		if err := syscall.Unmount(target, syscall.MNT_DETACH); err != nil {
			continue
		}
		opts := "lowerdir=" + host + ",upperdir=" + upper + ",workdir=" + work
		if err := syscall.Mount("overlay", target, "overlay", 0, opts); err != nil {
			_ = syscall.Mount(host, target, "", syscall.MS_BIND|syscall.MS_REC, "")
			continue
		}
		b.overlay["/"+name] = true
		for _, m := range topSubmounts(mounts, host) {
			t := filepath.Join(b.root, m)
			if _, err := os.Stat(t); err != nil {
				continue
			}
			if syscall.Mount(m, t, "", syscall.MS_BIND|syscall.MS_REC, "") == nil {
				b.rebound = append(b.rebound, m)
			}
		}
	}
}

// inOverlay says whether new entries of the container directory cpath stay private (it lies
// in an overlaid top-level directory and not in a host mount bound back there).
func (b *rootBuilder) inOverlay(cpath string) bool {
	parts := strings.SplitN(strings.TrimPrefix(cpath, "/"), "/", 2)
	if !b.overlay["/"+parts[0]] {
		return false
	}
	for _, m := range b.rebound {
		if cpath == m || strings.HasPrefix(cpath, m+"/") {
			return false
		}
	}
	return true
}

// hostMountPoints lists the mount points of the agent's mount namespace.
func hostMountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 {
			out = append(out, unescapeMount(fs[4]))
		}
	}
	return out
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// topSubmounts are the outermost mount points strictly below dir.
func topSubmounts(mounts []string, dir string) []string {
	var below []string
	for _, m := range mounts {
		if strings.HasPrefix(m, dir+"/") {
			below = append(below, m)
		}
	}
	sort.Strings(below)
	var out []string
	for _, m := range below {
		if len(out) > 0 && (m == out[len(out)-1] || strings.HasPrefix(m, out[len(out)-1]+"/")) {
			continue
		}
		out = append(out, m)
	}
	return out
}
