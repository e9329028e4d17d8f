package spec

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/boot/ociimage"
	"github.com/kitrun/kitrun/hypervisor"
)

// Sandbox confines a program (see kitinit): its own mount, pid, ipc and
// uts namespaces (and network namespace with Net "new"), a capability
// bounding set, no_new_privs, a seccomp filter and a cgroup.
type Sandbox struct {
	// Capabilities kept (CAP_ names, sorted); the default set when the
	// spec names none.
	Capabilities []string
	Readonly     bool
	Binds        []Bind
	Net          string // NetHost | NetNew
	MemoryMiB    int    // 0: no limit
	CPUMilli     int    // thousandths of a CPU, 0: no limit
	Seccomp      string // SeccompDefault | SeccompUnconfined
	Pos          Pos
}

// Bind is `binds:` "source:target[:rw|ro]": a guest path mounted into
// the sandboxed program's root.
type Bind struct {
	Source, Target string
	Writable       bool
}

// Sandbox settings.
const (
	NetHost           = "host"
	NetNew            = "new"
	SeccompDefault    = "default"
	SeccompUnconfined = "unconfined"
)

// sandboxKeys are the keys that configure a sandbox; each needs one.
var sandboxKeys = []string{"capabilities", "readonly", "binds", "net", "resources", "seccomp"}

var resourceKeys = keySet{in: "resources", valid: []string{"memory", "cpu"}}

// image parses `image:`.
func (p *parser) image(f *fields) (ociimage.Source, bool) {
	n, ok := f.scalar("image", "an image reference")
	if !ok {
		return ociimage.Source{}, false
	}
	src, err := ociimage.ParseSource(n.Value, p.dir)
	if err != nil {
		f.errorf("image", "%v", err)
		return ociimage.Source{}, false
	}
	return src, true
}

// sandbox parses the sandbox keys of a program: image programs are
// always sandboxed, others with `sandbox: true`.
func (p *parser) sandbox(f *fields, image bool) *Sandbox {
	on := image
	if v, ok := f.boolean("sandbox"); ok {
		on = v
		if image && !v {
			// Its root exists only as a directory of the initramfs: only
			// the sandbox makes it the program's root.
			f.errorf("sandbox", "an image program always runs in its sandbox; relax it with capabilities:, binds: or seccomp: unconfined instead")
			on = true
		}
	}
	if !on {
		for _, k := range sandboxKeys {
			if f.has(k) {
				p.errorf(f.keyPos(k), "%s configures the sandbox, which is off for this program; set sandbox: true or remove %s", f.label(k), k)
			}
		}
		return nil
	}
	sb := &Sandbox{Net: NetHost, Seccomp: SeccompDefault, Pos: p.at(f.node)}
	sb.Capabilities = slices.Clone(initproto.DefaultCapabilities)
	if caps, pos, ok := f.strs("capabilities"); ok {
		sb.Capabilities = []string{}
		valid := make([]string, 0, len(initproto.Capabilities))
		for c := range initproto.Capabilities {
			valid = append(valid, c)
		}
		sort.Strings(valid)
		for i, c := range caps {
			name := strings.ToUpper(c)
			if !strings.HasPrefix(name, "CAP_") {
				name = "CAP_" + name
			}
			if _, ok := initproto.Capabilities[name]; !ok {
				msg := fmt.Sprintf("%s: %q is not a capability;", f.label("capabilities"), c)
				if s := Suggest(name, valid); s != "" {
					msg += fmt.Sprintf(" did you mean %q?", s)
				}
				p.errorf(pos[i], "%s valid names are CAP_CHOWN … CAP_CHECKPOINT_RESTORE (capabilities(7)); [] keeps none", msg)
				continue
			}
			if !slices.Contains(sb.Capabilities, name) {
				sb.Capabilities = append(sb.Capabilities, name)
			}
		}
	}
	sort.Strings(sb.Capabilities)
	if v, ok := f.boolean("readonly"); ok {
		sb.Readonly = v
		if v && !image {
			f.errorf("readonly", "a read-only root needs an image: this program shares the image's root; use image: or remove readonly")
		}
	}
	if binds, pos, ok := f.strs("binds"); ok {
		for i, b := range binds {
			if bd, ok := p.bind(pos[i], f.label("binds"), b); ok {
				sb.Binds = append(sb.Binds, bd)
			}
		}
		if len(sb.Binds) > 0 && !image {
			f.errorf("binds", "binds need an image: this program already sees the image's whole root; use image: or remove binds")
		}
	}
	if v, ok := f.enum("net", []string{NetHost, NetNew}); ok {
		sb.Net = v
	}
	if v, ok := f.enum("seccomp", []string{SeccompDefault, SeccompUnconfined}); ok {
		sb.Seccomp = v
	}
	if rf, ok := f.mapping("resources", resourceKeys); ok {
		if n, ok := rf.scalar("memory", "a size like 64M or 1G"); ok {
			mib, err := hypervisor.ParseMemory(n.Value)
			if err != nil {
				rf.errorf("memory", "%v", err)
			} else {
				sb.MemoryMiB = mib
			}
		}
		if n, ok := rf.scalar("cpu", "a number of CPUs like 0.5 or 2"); ok {
			v, err := strconv.ParseFloat(n.Value, 64)
			if err != nil || v < 0.001 || v > 1024 {
				rf.errorf("cpu", "%q is not valid; use a number of CPUs from 0.001 to 1024, like 0.5", n.Value)
			} else {
				sb.CPUMilli = int(v*1000 + 0.5)
			}
		}
	}
	return sb
}

// bind parses "source:target[:rw|ro]"; both are absolute guest paths.
func (p *parser) bind(pos Pos, label, s string) (Bind, bool) {
	const form = `use "SOURCE:TARGET" or "SOURCE:TARGET:rw" (read-only unless :rw), both absolute guest paths`
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		p.errorf(pos, "%s: %q is not a bind; %s", label, s, form)
		return Bind{}, false
	}
	b := Bind{}
	if len(parts) == 3 {
		switch parts[2] {
		case "rw":
			b.Writable = true
		case "ro":
		default:
			p.errorf(pos, "%s: %q: mode %q is not valid; %s", label, s, parts[2], form)
			return Bind{}, false
		}
	}
	var ok1, ok2 bool
	b.Source, ok1 = p.checkGuestPath(pos, label+" source", parts[0], false)
	b.Target, ok2 = p.checkGuestPath(pos, label+" target", parts[1], false)
	return b, ok1 && ok2
}
