package ociimage

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/kitrun/kitrun/boot/atomicfile"
)

// store is the blob store: DIR/blobs/sha256/HEX, each written once,
// atomically, after its content was checked against its digest; and
// DIR/refs/HEX, the image (and index) digest a registry reference resolved
// to for a platform, for --offline.
type store struct {
	dir string
}

func (st *store) blobPath(h v1.Hash) string {
	return filepath.Join(st.dir, "blobs", h.Algorithm, h.Hex)
}

func (st *store) has(h v1.Hash) bool {
	_, err := os.Stat(st.blobPath(h))
	return err == nil
}

func (st *store) open(h v1.Hash) (io.ReadCloser, error) {
	f, err := os.Open(st.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("blob %s is not in the cache: %w", h, err)
	}
	return f, nil
}

// put stores what open yields as blob h unless the store has it; the
// content must hash to h.
func (st *store) put(h v1.Hash, what string, open func() (io.ReadCloser, error)) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("%s %s: unsupported digest algorithm", what, h)
	}
	if st.has(h) {
		return nil
	}
	p := st.blobPath(h)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, h, err)
	}
	defer rc.Close()
	return atomicfile.WriteFrom(p, 0o644, func(w io.Writer) error {
		sum := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, sum), rc); err != nil {
			return fmt.Errorf("%s %s: %w", what, h, err)
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != h.Hex {
			return fmt.Errorf("digest mismatch: %s %s has content that hashes to sha256:%s", what, h, got)
		}
		return nil
	})
}

func (st *store) putBytes(h v1.Hash, what string, b []byte) error {
	return st.put(h, what, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// putImage stores img's manifest, config and layers and returns its
// manifest digest.
func (st *store) putImage(img v1.Image) (v1.Hash, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := st.putBytes(h, "manifest", raw); err != nil {
		return v1.Hash{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("manifest %s: %w", h, err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("config: %w", err)
	}
	if err := st.putBytes(m.Config.Digest, "config", cfg); err != nil {
		return v1.Hash{}, err
	}
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if err := st.put(l.Digest, "layer", layer.Compressed); err != nil {
			return v1.Hash{}, err
		}
	}
	return h, nil
}

func (st *store) manifest(h v1.Hash) (*v1.Manifest, error) {
	b, err := os.ReadFile(st.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("manifest %s is not in the cache: %w", h, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	return m, nil
}

func (st *store) config(m *v1.Manifest) (*v1.ConfigFile, error) {
	b, err := os.ReadFile(st.blobPath(m.Config.Digest))
	if err != nil {
		return nil, fmt.Errorf("config %s is not in the cache: %w", m.Config.Digest, err)
	}
	c, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return c, nil
}

type refRecord struct {
	image v1.Hash
	index string
}

func (st *store) refPath(key string) string {
	s := sha256.Sum256([]byte(key))
	return filepath.Join(st.dir, "refs", hex.EncodeToString(s[:]))
}

func (st *store) setRef(key string, r refRecord) error {
	p := st.refPath(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(p, []byte(r.image.String()+"\n"+r.index+"\n"), 0o644)
}

func (st *store) ref(key string) (refRecord, error) {
	b, err := os.ReadFile(st.refPath(key))
	if err != nil {
		return refRecord{}, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		return refRecord{}, errors.New("bad reference record")
	}
	h, err := v1.NewHash(lines[0])
	if err != nil {
		return refRecord{}, err
	}
	if !st.has(h) {
		return refRecord{}, fmt.Errorf("manifest %s is gone from the cache", h)
	}
	return refRecord{image: h, index: lines[1]}, nil
}

// decompress undoes a layer's compression, by media type and, for the
// docker types that do not say, by magic number.
func decompress(r io.Reader, mt types.MediaType) (io.Reader, error) {
	br := &peekReader{r: r}
	magic, err := br.peek(4)
	if err != nil && err != io.EOF {
		return nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return gzip.NewReader(br)
	case len(magic) >= 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case strings.Contains(string(mt), "gzip") || strings.Contains(string(mt), "zstd"):
		return nil, fmt.Errorf("media type %s but the blob is not compressed that way", mt)
	}
	return br, nil
}

// peekReader lets decompress look at the first bytes of a stream.
type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.buf) < n {
		b := make([]byte, n-len(p.buf))
		m, err := p.r.Read(b)
		p.buf = append(p.buf, b[:m]...)
		if err != nil {
			return p.buf, err
		}
	}
	return p.buf, nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}
