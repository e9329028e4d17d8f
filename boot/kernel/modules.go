package kernel

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Module is one kernel module of an Index.
type Module struct {
	// Name is the normalised module name ('_', not '-').
	Name string `json:"name"`
	// Path is the module file relative to the modules directory, with
	// forward slashes, e.g. "kernel/drivers/net/virtio_net.ko". Compressed
	// modules keep their suffix (".ko.xz", ".ko.zst", ".ko.gz"). Empty for
	// built-in modules.
	Path string `json:"path,omitempty"`
	// Depends are the modules this one needs loaded first (normalised).
	Depends []string `json:"depends,omitempty"`
	// SoftdepPre and SoftdepPost are the optional modules to load before and
	// after this one (softdep= "pre:" and "post:"), as written by the module:
	// names or aliases, normalised.
	SoftdepPre  []string `json:"softdepPre,omitempty"`
	SoftdepPost []string `json:"softdepPost,omitempty"`
	// Builtin modules are compiled into the kernel: present, never loaded.
	Builtin bool `json:"builtin,omitempty"`
	// Size is the module file's size in bytes (0 for built-ins).
	Size int64 `json:"size,omitempty"`
}

// Index is the set of modules of one kernel, built-in and loadable. It is
// read-only once built and safe for concurrent use.
type Index struct {
	// Dir is the modules directory the index describes.
	Dir string
	// Version is the kernel release (the base name of Dir).
	Version string

	mods    map[string]*Module
	aliases map[string][]string // exact (non-wildcard) alias -> module names
	names   []string            // sorted
}

// IndexOption configures Kernel.Modules.
type IndexOption func(*indexOptions)

type indexOptions struct {
	cacheDir    string
	cacheDirSet bool
	noCache     bool
}

// IndexCacheDir caches the index in dir, in a file named after the modules
// directory, instead of the default: inside the extraction for kernels from
// FromDeb, no cache for FromFiles. An empty dir means no cache.
func IndexCacheDir(dir string) IndexOption {
	return func(o *indexOptions) { o.cacheDir, o.cacheDirSet = dir, true }
}

// NoIndexCache builds the index from the module files, neither reading nor
// writing a cache.
func NoIndexCache() IndexOption {
	return func(o *indexOptions) { o.noCache = true }
}

// indexFile is the on-disk cache format.
type indexFile struct {
	Format      int
	Version     string
	Fingerprint string
	Modules     []*Module
	Aliases     map[string][]string
}

const indexFormat = 1

// Modules returns the kernel's module index. The index is cached as JSON
// (see IndexCacheDir) and the cache is used when it matches the module tree:
// the same files with the same sizes and modification times.
func (k *Kernel) Modules(opts ...IndexOption) (*Index, error) {
	if k.ModulesDir == "" {
		return nil, fmt.Errorf("kernel %s has no modules directory", k.Image)
	}
	var o indexOptions
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := filepath.Abs(k.ModulesDir)
	if err != nil {
		return nil, err
	}
	cacheFile := k.indexCache
	if o.cacheDirSet {
		cacheFile = ""
		if o.cacheDir != "" {
			h := sha256.Sum256([]byte(dir))
			cacheFile = filepath.Join(o.cacheDir, "modindex-"+filepath.Base(dir)+"-"+hex.EncodeToString(h[:6])+".json")
		}
	}
	if o.noCache {
		cacheFile = ""
	}

	files, fp, err := scanModules(dir)
	if err != nil {
		return nil, err
	}
	if cacheFile != "" {
		if ix, err := loadIndex(cacheFile, dir, fp); err == nil {
			return ix, nil
		}
	}
	ix, err := buildIndex(dir, files)
	if err != nil {
		return nil, err
	}
	if cacheFile != "" {
		// A cache that cannot be written only costs time next run.
		if os.MkdirAll(filepath.Dir(cacheFile), 0o755) == nil {
			writeJSON(cacheFile, ix.file(fp))
		}
	}
	return ix, nil
}

// moduleFile is a module found on disk.
type moduleFile struct {
	rel  string // slash-separated, relative to the modules dir
	size int64
}

// moduleSuffixes are the module file names the index reads.
var moduleSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

func moduleSuffix(name string) string {
	for _, s := range moduleSuffixes {
		if strings.HasSuffix(name, s) {
			return s
		}
	}
	return ""
}

// scanModules lists the module files under dir and fingerprints them and the
// built-in lists, for cache validation.
func scanModules(dir string) ([]moduleFile, string, error) {
	var files []moduleFile
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // directories, and symlinks such as build/ and source/
		}
		name := d.Name()
		isMod := moduleSuffix(name) != ""
		if !isMod && name != "modules.builtin" && name != "modules.builtin.modinfo" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", rel, info.Size(), info.ModTime().UnixNano())
		if isMod {
			files = append(files, moduleFile{rel: rel, size: info.Size()})
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("kernel modules: %w", err)
	}
	return files, hex.EncodeToString(h.Sum(nil)), nil
}

func loadIndex(file, dir, fingerprint string) (*Index, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var f indexFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if f.Format != indexFormat || f.Fingerprint != fingerprint {
		return nil, errors.New("stale module index cache")
	}
	ix := &Index{Dir: dir, Version: filepath.Base(dir), mods: make(map[string]*Module, len(f.Modules)), aliases: f.Aliases}
	for _, m := range f.Modules {
		ix.mods[m.Name] = m
	}
	ix.finish()
	return ix, nil
}

func (ix *Index) file(fingerprint string) *indexFile {
	f := &indexFile{Format: indexFormat, Version: ix.Version, Fingerprint: fingerprint, Aliases: ix.aliases}
	for _, n := range ix.names {
		f.Modules = append(f.Modules, ix.mods[n])
	}
	return f
}

func (ix *Index) finish() {
	ix.names = ix.names[:0]
	for n := range ix.mods {
		ix.names = append(ix.names, n)
	}
	sort.Strings(ix.names)
	if ix.aliases == nil {
		ix.aliases = map[string][]string{}
	}
}

// modinfo is what the index keeps of a module's .modinfo section.
type modinfo struct {
	name      string
	depends   []string
	pre, post []string
	aliases   []string
}

// buildIndex reads every module's .modinfo, concurrently, and the built-in
// module lists.
func buildIndex(dir string, files []moduleFile) (*Index, error) {
	ix := &Index{Dir: dir, Version: filepath.Base(dir), mods: map[string]*Module{}, aliases: map[string][]string{}}
	infos := make([]modinfo, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	workers := max(4, 2*runtime.GOMAXPROCS(0))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				infos[i], errs[i] = readModinfo(filepath.Join(dir, filepath.FromSlash(files[i].rel)))
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	for i, f := range files {
		mi := infos[i]
		name := mi.name
		if name == "" {
			base := filepath.Base(f.rel)
			name = normName(base[:len(base)-len(moduleSuffix(base))])
		}
		m := &Module{Name: name, Path: f.rel, Depends: mi.depends, SoftdepPre: mi.pre, SoftdepPost: mi.post, Size: f.size}
		if prev, ok := ix.mods[name]; ok && !preferPath(f.rel, prev.Path) {
			continue
		}
		ix.mods[name] = m
		for _, a := range mi.aliases {
			ix.addAlias(a, name)
		}
	}
	if err := ix.readBuiltin(); err != nil {
		return nil, err
	}
	for a, ns := range ix.aliases {
		sort.Strings(ns)
		ix.aliases[a] = dedupe(ns)
	}
	ix.finish()
	return ix, nil
}

// preferPath decides between two files of the same module like depmod's
// default search order: updates/ wins, then the lexically first path.
func preferPath(a, b string) bool {
	ua, ub := strings.HasPrefix(a, "updates/"), strings.HasPrefix(b, "updates/")
	if ua != ub {
		return ua
	}
	return a < b
}

func (ix *Index) addAlias(alias, name string) {
	if strings.ContainsAny(alias, "*?[") {
		return // wildcards (pci:v*d*...) match devices; kitrun resolves names
	}
	a := normName(alias)
	ix.aliases[a] = append(ix.aliases[a], name)
}

// readBuiltin adds modules.builtin (paths of built-in modules) and
// modules.builtin.modinfo ("name.key=value" strings, NUL-separated).
func (ix *Index) readBuiltin() error {
	add := func(name string) {
		if m, ok := ix.mods[name]; ok && !m.Builtin {
			// Both built in and a file: the kernel uses the built-in one.
			*m = Module{Name: name}
		}
		if _, ok := ix.mods[name]; !ok {
			ix.mods[name] = &Module{Name: name}
		}
		ix.mods[name].Builtin = true
	}
	f, err := os.Open(filepath.Join(ix.Dir, "modules.builtin"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kernel modules: %w", err)
	}
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			base := filepath.Base(line)
			add(normName(base[:len(base)-len(moduleSuffix(base))]))
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("kernel modules: modules.builtin: %w", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(ix.Dir, "modules.builtin.modinfo"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kernel modules: %w", err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		s := string(kv)
		dot, eq := strings.IndexByte(s, '.'), strings.IndexByte(s, '=')
		if dot <= 0 || eq < dot {
			continue
		}
		name := normName(s[:dot])
		add(name)
		if s[dot+1:eq] == "alias" {
			ix.addAlias(s[eq+1:], name)
		}
	}
	return nil
}

// readModinfo reads the .modinfo section of a module file.
func readModinfo(file string) (modinfo, error) {
	var ef *elf.File
	var err error
	switch moduleSuffix(file) {
	case ".ko":
		ef, err = elf.Open(file)
	default:
		var b []byte
		b, err = decompressModule(file)
		if err == nil {
			ef, err = elf.NewFile(bytes.NewReader(b))
		}
	}
	if err != nil {
		return modinfo{}, fmt.Errorf("kernel module %s: %w", file, err)
	}
	defer ef.Close()
	sec := ef.Section(".modinfo")
	if sec == nil {
		return modinfo{}, fmt.Errorf("kernel module %s: no .modinfo section", file)
	}
	data, err := sec.Data()
	if err != nil {
		return modinfo{}, fmt.Errorf("kernel module %s: .modinfo: %w", file, err)
	}
	return parseModinfo(data), nil
}

func decompressModule(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader
	switch moduleSuffix(file) {
	case ".ko.xz":
		r, err = xz.NewReader(bufio.NewReader(f))
	case ".ko.gz":
		r, err = gzip.NewReader(bufio.NewReader(f))
	case ".ko.zst":
		var d *zstd.Decoder
		d, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err == nil {
			defer d.Close()
			r = d
		}
	}
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// parseModinfo parses NUL-separated key=value strings.
func parseModinfo(data []byte) modinfo {
	var mi modinfo
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			mi.name = normName(v)
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					mi.depends = append(mi.depends, normName(d))
				}
			}
		case "softdep":
			pre, post := parseSoftdep(v)
			mi.pre = append(mi.pre, pre...)
			mi.post = append(mi.post, post...)
		case "alias":
			mi.aliases = append(mi.aliases, v)
		}
	}
	return mi
}

// parseSoftdep parses "pre: a b post: c". As in kmod, names before the first
// "pre:" or "post:" belong to neither and are ignored.
func parseSoftdep(v string) (pre, post []string) {
	var cur *[]string
	for _, f := range strings.Fields(v) {
		switch f {
		case "pre:":
			cur = &pre
		case "post:":
			cur = &post
		default:
			if cur != nil {
				*cur = append(*cur, normName(f))
			}
		}
	}
	return pre, post
}

// normName normalises a module name or alias: '-' becomes '_'.
func normName(s string) string {
	return strings.ReplaceAll(s, "-", "_")
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}
