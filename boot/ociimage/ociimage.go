// Package ociimage owns kitrun's OCI images: it parses an image reference
// (a registry reference, oci-layout:DIR or docker-archive:FILE), fetches
// the image for the target platform into kitrun's blob store (every blob
// verified against its digest, kept by digest), and flattens its layers
// into one root file tree (whiteouts applied) with the image's run
// configuration. The assembler turns that tree into initramfs entries;
// nothing here knows about initramfs or kitinit.
package ociimage

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Source kinds.
const (
	KindRegistry      = "registry"
	KindOCILayout     = "oci-layout"
	KindDockerArchive = "docker-archive"
)

// Source is a parsed image reference.
type Source struct {
	Kind string
	// Ref is the registry reference (KindRegistry), or the tag or digest
	// to pick from an OCI layout ("" = the layout's only image or index).
	Ref string
	// Path is the host path of the layout directory or archive, absolute
	// once resolved against a base directory.
	Path string
}

func (s Source) String() string {
	switch s.Kind {
	case KindRegistry:
		return s.Ref
	case KindOCILayout:
		if s.Ref != "" {
			return s.Kind + ":" + s.Path + "@" + s.Ref
		}
	}
	return s.Kind + ":" + s.Path
}

// ParseSource parses an image reference; relative paths are resolved
// against baseDir. The error says what forms are valid.
func ParseSource(s, baseDir string) (Source, error) {
	const forms = "use a registry reference (registry.example.com/acme/web:1.0 or …@sha256:<64 hex>), oci-layout:DIR[@sha256:<digest>|@TAG] or docker-archive:FILE.tar"
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(baseDir, p)
	}
	switch {
	case strings.HasPrefix(s, KindOCILayout+":"):
		p := strings.TrimPrefix(s, KindOCILayout+":")
		ref := ""
		if i := strings.LastIndex(p, "@"); i >= 0 {
			p, ref = p[:i], p[i+1:]
			if ref == "" {
				return Source{}, fmt.Errorf("%q has an empty tag or digest after '@'; %s", s, forms)
			}
		}
		if p == "" {
			return Source{}, fmt.Errorf("%q has no directory; %s", s, forms)
		}
		return Source{Kind: KindOCILayout, Path: abs(p), Ref: ref}, nil
	case strings.HasPrefix(s, KindDockerArchive+":"):
		p := strings.TrimPrefix(s, KindDockerArchive+":")
		if p == "" {
			return Source{}, fmt.Errorf("%q has no file; %s", s, forms)
		}
		return Source{Kind: KindDockerArchive, Path: abs(p)}, nil
	}
	if i := strings.Index(s, ":"); i > 0 && !strings.ContainsAny(s[:i], "./") && !strings.Contains(s[i+1:], "/") && strings.HasPrefix(s[i+1:], "./") {
		return Source{}, fmt.Errorf("%q: unknown transport %q; %s", s, s[:i], forms)
	}
	ref, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		// Strict validation refuses a reference without a tag or digest;
		// say so rather than echoing the library's wording alone.
		if _, werr := name.ParseReference(s); werr == nil {
			return Source{}, fmt.Errorf("%q has no tag or digest; pin it (…:1.0 or …@sha256:<digest>) so builds are reproducible", s)
		}
		return Source{}, fmt.Errorf("%q is not a valid image reference (%v); %s", s, err, forms)
	}
	return Source{Kind: KindRegistry, Ref: ref.String()}, nil
}

// Platform is the platform to pick from a multi-arch index: OCI names
// (GOOS, GOARCH and the arm variant).
type Platform struct {
	OS, Architecture, Variant string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Options steer Pull.
type Options struct {
	// CacheDir is kitrun's cache; blobs live in CacheDir/oci.
	CacheDir string
	// Offline uses only the blob store: a registry image must have been
	// pulled before (by the same reference and platform).
	Offline bool
	// Keychain authenticates to registries; authn.DefaultKeychain (the
	// user's docker config and its credential helpers) when nil.
	Keychain authn.Keychain
	// Transport for registry requests; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// Insecure allows plain HTTP registries (tests' in-process registry).
	Insecure bool
}

// Config is what the image says about running it.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=VALUE
	User       string
	WorkingDir string
}

// File is one entry of a flattened root file tree.
type File struct {
	Path     string // absolute, cleaned
	Type     byte   // tar.TypeReg, TypeDir, TypeSymlink, TypeChar, TypeBlock, TypeFifo
	Mode     int64  // permission bits with setuid/setgid/sticky (tar's encoding)
	UID, GID int
	Linkname string // symlink target
	Data     []byte
	Major    int64
	Minor    int64
}

// Image is a pulled, verified and flattened image.
type Image struct {
	Source Source
	// Digest is the digest of the image manifest chosen for the platform;
	// IndexDigest that of the index it was chosen from ("" for a single
	// image).
	Digest      string
	IndexDigest string
	Platform    Platform
	Config      Config
	Files       []File // sorted by path
	// Compressed is the size of the layer blobs; Bytes that of the file
	// contents of the flattened tree.
	Compressed int64
	Bytes      int64
}

// Pull fetches src for plat into the blob store, verifies it and flattens
// it. Errors name the source and what went wrong (unknown image, no such
// platform, digest mismatch, unreachable registry, corrupt layer).
func Pull(ctx context.Context, src Source, plat Platform, opts Options) (*Image, error) {
	img, err := pull(ctx, src, plat, opts)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", src, err)
	}
	return img, nil
}

func pull(ctx context.Context, src Source, plat Platform, opts Options) (*Image, error) {
	if opts.CacheDir == "" {
		return nil, errors.New("no cache directory")
	}
	st := &store{dir: filepath.Join(opts.CacheDir, "oci")}
	out := &Image{Source: src, Platform: plat}
	var digest v1.Hash
	var err error
	switch src.Kind {
	case KindRegistry:
		digest, err = fetchRegistry(ctx, st, src, plat, opts, out)
	case KindOCILayout:
		digest, err = fetchLayout(st, src, plat, out)
	case KindDockerArchive:
		var img v1.Image
		img, err = tarball.ImageFromPath(src.Path, nil)
		if err != nil {
			return nil, fmt.Errorf("reading docker archive: %w", err)
		}
		digest, err = st.putImage(img)
	default:
		return nil, fmt.Errorf("unknown source kind %q", src.Kind)
	}
	if err != nil {
		return nil, err
	}
	out.Digest = digest.String()
	return out, st.flatten(ctx, digest, plat, out)
}

// fetchRegistry resolves src (an index or an image) and stores the image
// for plat; offline, it resolves through the reference recorded by an
// earlier pull.
func fetchRegistry(ctx context.Context, st *store, src Source, plat Platform, opts Options, out *Image) (v1.Hash, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(src.Ref, nopts...)
	if err != nil {
		return v1.Hash{}, err
	}
	refKey := src.Ref + "\n" + plat.String()
	if opts.Offline {
		if d, ok := ref.(name.Digest); ok {
			h, _ := v1.NewHash(d.DigestStr())
			if st.has(h) {
				// A digest reference may name the index or the image.
				if rec, err := st.ref(refKey); err == nil {
					out.IndexDigest = rec.index
					return rec.image, nil
				}
				return h, nil
			}
		}
		rec, err := st.ref(refKey)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("--offline and not in the cache (%s); pull it once without --offline", st.dir)
		}
		out.IndexDigest = rec.index
		return rec.image, nil
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if opts.Transport != nil {
		ropts = append(ropts, remote.WithTransport(opts.Transport))
	}
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return v1.Hash{}, describeRemote(err)
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return v1.Hash{}, err
		}
		img, err = selectPlatform(idx, plat)
		if err != nil {
			return v1.Hash{}, err
		}
		out.IndexDigest = desc.Digest.String()
	} else {
		img, err = desc.Image()
		if err != nil {
			return v1.Hash{}, err
		}
	}
	h, err := st.putImage(img)
	if err != nil {
		return v1.Hash{}, describeRemote(err)
	}
	return h, st.setRef(refKey, refRecord{image: h, index: out.IndexDigest})
}

// describeRemote turns registry and transport errors into what the user
// can act on.
func describeRemote(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return fmt.Errorf("unknown image: the registry has no such repository, tag or digest (%w)", err)
			}
		}
		if terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("unknown image: the registry answered 404 (%w)", err)
		}
		return err
	}
	var nerr net.Error
	var oerr *net.OpError
	if errors.As(err, &oerr) || errors.As(err, &nerr) {
		return fmt.Errorf("registry unreachable: %w", err)
	}
	return err
}

func fetchLayout(st *store, src Source, plat Platform, out *Image) (v1.Hash, error) {
	idx, err := layout.ImageIndexFromPath(src.Path)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("not an OCI layout directory (no readable index.json/oci-layout): %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	// The layout's index.json lists what it holds; pick by digest or by
	// the org.opencontainers.image.ref.name annotation, or take the only
	// entry.
	var chosen []v1.Descriptor
	for _, d := range im.Manifests {
		if src.Ref == "" || d.Digest.String() == src.Ref || d.Annotations["org.opencontainers.image.ref.name"] == src.Ref {
			chosen = append(chosen, d)
		}
	}
	switch {
	case len(chosen) == 0:
		return v1.Hash{}, fmt.Errorf("unknown image: the layout has no entry %q (it has %s)", src.Ref, layoutEntries(im))
	case len(chosen) > 1:
		// Several entries and no choice: a multi-arch layout whose
		// index.json lists the images directly.
		if src.Ref == "" {
			img, err := selectPlatform(idx, plat)
			if err != nil {
				return v1.Hash{}, err
			}
			return st.putImage(img)
		}
		return v1.Hash{}, fmt.Errorf("%q matches %d entries of the layout; name one by digest", src.Ref, len(chosen))
	}
	d := chosen[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return v1.Hash{}, err
		}
		img, err := selectPlatform(child, plat)
		if err != nil {
			return v1.Hash{}, err
		}
		out.IndexDigest = d.Digest.String()
		return st.putImage(img)
	}
	img, err := idx.Image(d.Digest)
	if err != nil {
		return v1.Hash{}, err
	}
	return st.putImage(img)
}

func layoutEntries(im *v1.IndexManifest) string {
	var s []string
	for _, d := range im.Manifests {
		e := d.Digest.String()
		if n := d.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			e = n + " (" + e + ")"
		}
		s = append(s, e)
	}
	if len(s) == 0 {
		return "no entries"
	}
	return strings.Join(s, ", ")
}

// selectPlatform picks plat's image from an index (descending into nested
// indexes); the error lists the platforms the index has.
func selectPlatform(idx v1.ImageIndex, plat Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			if img, err := selectPlatform(child, plat); err == nil {
				return img, nil
			}
			continue
		}
		if d.Platform == nil {
			have = append(have, "unknown")
			continue
		}
		p := Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
		have = append(have, p.String())
		if platformMatches(p, plat) {
			return idx.Image(d.Digest)
		}
	}
	sort.Strings(have)
	return nil, fmt.Errorf("wrong architecture: the index has no %s image (it has %s)", plat, strings.Join(have, ", "))
}

// platformMatches: OS and architecture must agree; a variant matters only
// when both name one (arm64 images are "v8" or unmarked).
func platformMatches(have, want Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	return have.Variant == "" || want.Variant == "" || have.Variant == want.Variant
}

// flatten reads the stored image digest, checks its platform, and applies
// its layers in order into out.Files.
func (st *store) flatten(ctx context.Context, digest v1.Hash, plat Platform, out *Image) error {
	m, err := st.manifest(digest)
	if err != nil {
		return err
	}
	cfg, err := st.config(m)
	if err != nil {
		return err
	}
	if cfg.OS != "" && cfg.Architecture != "" {
		p := Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if !platformMatches(p, plat) {
			return fmt.Errorf("wrong architecture: the image is %s, the target is %s", p, plat)
		}
	}
	out.Config = Config{
		Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Env: cfg.Config.Env,
		User: cfg.Config.User, WorkingDir: cfg.Config.WorkingDir,
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("corrupt image: %d layers but %d diff ids in its config", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	t := newTree()
	for i, l := range m.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		out.Compressed += l.Size
		if err := st.applyLayer(t, l, cfg.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	out.Files = t.files()
	for _, f := range out.Files {
		out.Bytes += int64(len(f.Data))
	}
	return nil
}

// applyLayer applies one layer, checking the uncompressed stream against
// its diff id.
func (st *store) applyLayer(t *tree, l v1.Descriptor, diffID v1.Hash) error {
	rc, err := st.open(l.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	r, err := decompress(rc, l.MediaType)
	if err != nil {
		return fmt.Errorf("corrupt layer: %w", err)
	}
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(r, h))
	t.beginLayer()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("corrupt layer: %w", err)
		}
		if err := t.apply(hdr, tr); err != nil {
			return err
		}
	}
	// Read the tar's trailing padding too, so the hash covers the stream.
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("corrupt layer: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		return fmt.Errorf("corrupt layer: its content hashes to %s, the image config says %s", got, diffID)
	}
	return nil
}

// node is a tree entry; layer is the layer that last wrote it.
type node struct {
	f     File
	layer int
	// hardlink target, resolved when the tree is listed
	link string
}

// tree is the flattened root, keyed by cleaned absolute path.
type tree struct {
	nodes map[string]*node
	layer int
}

func newTree() *tree { return &tree{nodes: map[string]*node{}} }

func (t *tree) beginLayer() { t.layer++ }

// removeUnder removes p's descendants (and p itself when self) written by
// lower layers than the current one.
func (t *tree) removeUnder(p string, self bool) {
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	for k, n := range t.nodes {
		if n.layer == t.layer {
			continue
		}
		if (self && k == p) || strings.HasPrefix(k, prefix) && k != p {
			delete(t.nodes, k)
		}
	}
}

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

func (t *tree) apply(hdr *tar.Header, r io.Reader) error {
	p := path.Clean("/" + hdr.Name)
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	switch {
	case base == opaqueWhiteout:
		// The directory's lower-layer contents are hidden; it stays.
		t.removeUnder(dir, false)
		return nil
	case strings.HasPrefix(base, whiteoutPrefix):
		t.removeUnder(path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)), true)
		return nil
	}
	f := File{Path: p, Type: hdr.Typeflag, Mode: hdr.Mode & 0o7777, UID: hdr.Uid, GID: hdr.Gid,
		Major: hdr.Devmajor, Minor: hdr.Devminor}
	n := &node{layer: t.layer}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		f.Type = tar.TypeReg
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("corrupt layer: reading %s: %w", p, err)
		}
		f.Data = data
	case tar.TypeDir:
		if old, ok := t.nodes[p]; ok && old.f.Type == tar.TypeDir {
			// A directory entry over a directory changes its metadata only.
			old.f, old.layer = f, t.layer
			return nil
		}
	case tar.TypeSymlink:
		f.Linkname = hdr.Linkname
	case tar.TypeLink:
		n.link = path.Clean("/" + hdr.Linkname)
		target, ok := t.nodes[n.link]
		if !ok || target.f.Type != tar.TypeReg {
			return fmt.Errorf("corrupt layer: hard link %s to %s, which is not a regular file of the image", p, hdr.Linkname)
		}
		f.Type, f.Data = tar.TypeReg, target.f.Data
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("corrupt layer: %s has unsupported tar type %q", p, hdr.Typeflag)
	}
	// Anything replacing a directory replaces its lower contents too.
	if old, ok := t.nodes[p]; ok && old.f.Type == tar.TypeDir && f.Type != tar.TypeDir {
		t.removeUnder(p, false)
	}
	n.f = f
	t.nodes[p] = n
	return nil
}

func (t *tree) files() []File {
	out := make([]File, 0, len(t.nodes))
	for _, n := range t.nodes {
		if n.f.Path == "/" {
			continue
		}
		out = append(out, n.f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
