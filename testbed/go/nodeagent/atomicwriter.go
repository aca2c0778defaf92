package nodeagent

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// writeAtomic writes a payload the way the kubelet's atomic writer does: the files in a
// timestamped directory, a "..data" symlink to it, and a symlink per top-level entry.
func writeAtomic(dir string, payload map[string]fileData) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if same(dir, payload) {
		return nil
	}
	ts := filepath.Join(dir, time.Now().UTC().Format("..2006_01_02_15_04_05.000000000"))
	if err := os.Mkdir(ts, 0o755); err != nil {
		return err
	}
	tops := map[string]bool{}
	for p, f := range payload {
		full := filepath.Join(ts, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Chmod(full, os.FileMode(f.mode&0o777)); err != nil {
			return err
		}
		tops[strings.SplitN(p, "/", 2)[0]] = true
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for t := range tops {
		link := filepath.Join(dir, t)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", t), link); err != nil {
				return err
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, "..") && !tops[n] {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	if old != "" && old != filepath.Base(ts) {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// same says whether the volume already holds exactly this payload.
func same(dir string, payload map[string]fileData) bool {
	cur, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		return false
	}
	base := filepath.Join(dir, cur)
	n := 0
	err = filepath.Walk(base, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		n++
		return nil
	})
	if err != nil || n != len(payload) {
		return false
	}
	keys := make([]string, 0, len(payload))
	for k := range payload {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := payload[k]
		full := filepath.Join(base, k)
		b, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(b, f.data) {
			return false
		}
		st, err := os.Stat(full)
		if err != nil || int32(st.Mode().Perm()) != f.mode&0o777 {
			return false
		}
	}
	return true
}
