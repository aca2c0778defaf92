package nodeagent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"sigs.k8s.io/yaml"
)

// ImageMap is the node agent's stand-in for a container image store: the file given with
// --images maps image references to the host programs and settings they stand for.
//
// Format (YAML):
//
//	images:
//	- image: busybox                # a repository (normalized: docker.io/library/busybox);
//	                                #   a tag (busybox:1.36) or digest restricts the entry to it
//	  user: "0"                     # the image's USER: "1000", "1000:1000" or a name; "" = root
//	  path: /usr/local/bin:/usr/bin:/bin   # PATH of the image's environment
//	  entrypoint: []                # the image's ENTRYPOINT
//	  cmd: [sh]                     # the image's CMD
//	  workingDir: /                 # the image's WORKDIR ("" = /)
//	  env: {LANG: C.UTF-8}          # further image environment
//
// An entry with a tag or digest wins over a repository-only entry. Containers run on the host's
// filesystem (the image has no root filesystem of its own): the entry only says which PATH,
// user, entrypoint, command and environment the image declares.
type ImageMap struct {
	Images []ImageEntry `json:"images"`
	file   string
}

// ImageEntry is one image of the map.
type ImageEntry struct {
	Image      string            `json:"image"`
	User       string            `json:"user,omitempty"`
	Path       string            `json:"path,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	// Layers: host directories that are part of the image's filesystem, bound read-only at
	// their own path (so a virtualenv in a checkout under /tmp is not hidden by the
	// container's private /tmp).
	Layers []string `json:"layers,omitempty"`

	named reference.Named
}

// UnmarshalJSON accepts a numeric user as well as a string.
func (e *ImageEntry) UnmarshalJSON(b []byte) error {
	type plain ImageEntry
	var raw struct {
		plain
		User interface{} `json:"user,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*e = ImageEntry(raw.plain)
	switch u := raw.User.(type) {
	case nil:
	case string:
		e.User = u
	case float64:
		e.User = strconv.FormatInt(int64(u), 10)
	default:
		return fmt.Errorf("image %q: user must be a string or a number", e.Image)
	}
	return nil
}

// LoadImageMap reads and validates the image map file.
func LoadImageMap(file string) (*ImageMap, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseImageMap(file, data)
}

// ParseImageMap parses the YAML of an image map; file names it in messages.
func ParseImageMap(file string, data []byte) (*ImageMap, error) {
	m := &ImageMap{file: file}
	if err := yaml.UnmarshalStrict(data, m); err != nil {
		return nil, fmt.Errorf("image map %s: %v", file, err)
	}
	for i := range m.Images {
		e := &m.Images[i]
		n, err := reference.ParseNormalizedNamed(e.Image)
		if err != nil {
			return nil, fmt.Errorf("image map %s: entry %d: image %q: %v", file, i, e.Image, err)
		}
		e.named = n
		if e.Path == "" {
			e.Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		}
	}
	return m, nil
}

// ImageError is why an image cannot be used: Reason is the container's waiting reason.
type ImageError struct {
	Reason  string
	Message string
}

func (e *ImageError) Error() string { return e.Message }

// ResolvedImage is an image of the map as a container uses it.
type ResolvedImage struct {
	Entry *ImageEntry
	Ref   string // normalized reference with tag, as a runtime reports status.image
	ID    string // imageID as a runtime reports it
}

// Resolve finds the entry for a pod's image reference, the way a runtime would pull it.
func (m *ImageMap) Resolve(image string) (*ResolvedImage, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, &ImageError{Reason: "InvalidImageName",
			Message: fmt.Sprintf("Failed to apply default image tag %q: couldn't parse image name %q: %v", image, image, err)}
	}
	named = reference.TagNameOnly(named)
	tag := ""
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	digest := ""
	if d, ok := named.(reference.Digested); ok {
		digest = d.Digest().String()
	}
	var best *ImageEntry
	bestScore := -1
	for i := range m.Images {
		e := &m.Images[i]
		if e.named.Name() != named.Name() {
			continue
		}
		score := 0
		if t, ok := e.named.(reference.Tagged); ok {
			if t.Tag() != tag {
				continue
			}
			score = 1
		}
		if d, ok := e.named.(reference.Digested); ok {
			if d.Digest().String() != digest {
				continue
			}
			score = 2
		}
		if score > bestScore {
			best, bestScore = e, score
		}
	}
	if best == nil {
		return nil, &ImageError{Reason: "ErrImagePull",
			Message: fmt.Sprintf("failed to pull and unpack image %q: image %q is not in the node agent's image map %s (add an entry for it there)",
				named.String(), reference.FamiliarString(named), m.file)}
	}
	sum := sha256.Sum256([]byte(best.Image + "\x00" + best.User + "\x00" + best.Path + "\x00" + strings.Join(best.Entrypoint, "\x00") + "\x00" + strings.Join(best.Cmd, "\x00")))
	id := named.Name() + "@sha256:" + hex.EncodeToString(sum[:])
	if digest != "" {
		id = named.Name() + "@" + digest
	}
	return &ResolvedImage{Entry: best, Ref: named.String(), ID: id}, nil
}

// ImageUser returns the image's declared user as the kubelet reads it from the runtime:
// a numeric uid, or a user name, or uid 0 when the image declares none.
func (e *ImageEntry) ImageUser() (*int64, string) {
	u := e.User
	if i := strings.IndexByte(u, ':'); i >= 0 {
		u = u[:i]
	}
	if u == "" {
		zero := int64(0)
		return &zero, ""
	}
	if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		return &n, ""
	}
	return nil, u
}
