package assemble

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kitrun/kitrun/boot/arch"
)

// libSearchPath is where a Debian host keeps shared libraries, by GOARCH
// (multiarch directories first, as ld.so searches them).
func libSearchPath(a arch.Arch) []string {
	triplet := a.Triplet
	return []string{
		"/lib/" + triplet, "/usr/lib/" + triplet,
		"/lib64", "/usr/lib64", "/lib", "/usr/lib",
	}
}

// hostBinary is a host executable and everything it needs at run time.
type hostBinary struct {
	path string
	// libs maps a guest path to the host file it comes from: the ELF
	// interpreter and every shared library, transitively.
	libs map[string]string
}

// inspectBinary checks that path is an executable for the target arch and
// collects its interpreter and shared libraries from the host.
func inspectBinary(path string, a arch.Arch) (*hostBinary, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s is not an ELF executable: %v", path, err)
	}
	defer f.Close()
	if f.Machine != a.ELF || f.Data != a.ELFData {
		return nil, fmt.Errorf("%s is built for %s (%s), not %s", path, f.Machine, f.Data, a.Name)
	}
	hb := &hostBinary{path: path, libs: map[string]string{}}
	if err := hb.addDeps(f, a); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return hb, nil
}

func (hb *hostBinary) addDeps(f *elf.File, a arch.Arch) error {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return err
		}
		interp := strings.TrimRight(string(b), "\x00")
		if err := hb.addFile(interp, interp); err != nil {
			return fmt.Errorf("interpreter: %v", err)
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil // static
	}
	for _, lib := range needed {
		if err := hb.addLib(lib, a); err != nil {
			return err
		}
	}
	return nil
}

func (hb *hostBinary) addLib(name string, a arch.Arch) error {
	for guest := range hb.libs {
		if filepath.Base(guest) == name {
			return nil
		}
	}
	for _, dir := range libSearchPath(a) {
		p := filepath.Join(dir, name)
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		if f.Machine != a.ELF || f.Data != a.ELFData {
			f.Close()
			continue
		}
		if err := hb.addFile(p, p); err != nil {
			f.Close()
			return err
		}
		err = hb.addDeps(f, a)
		f.Close()
		return err
	}
	return fmt.Errorf("shared library %s not found in %s", name, strings.Join(libSearchPath(a), ", "))
}

// addFile records host path src at guest path dst, following symlinks on the
// host so the guest gets the real bytes.
func (hb *hostBinary) addFile(dst, src string) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	if _, err := os.Stat(real); err != nil {
		return err
	}
	hb.libs[dst] = real
	return nil
}
