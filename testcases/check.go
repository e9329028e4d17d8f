package testcases

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// session is one boot of a test: the guest, what it recorded, and what the
// assertions so far did to it.
type session struct {
	g   Guest
	rec *Record
	tf  *TestFile
	// poweredOff: an assertion ended the machine on purpose (shutdown,
	// halts_itself, reboots_itself).
	poweredOff bool
}

// Console line patterns that fail every test unless it opts out. The
// kernel's own reports start with its printk time stamp: a guest program's
// output, which kitinit relays prefixed with its name, can mention a panic
// without being one (and a guest program cannot print a line that starts
// with a time stamp: see boot/kitinit's LockConsole).
var implicitConsole = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(kernelLine + `Kernel panic`), "a kernel panic"},
	{regexp.MustCompile(kernelLine + `.*\bBUG: `), "a kernel BUG"},
	{regexp.MustCompile(kernelLine + `.*\bOops\b`), "a kernel oops"},
	{regexp.MustCompile(kernelLine + `.*WARNING: CPU: \d+ PID: \d+`), "a kernel warning"},
	{regexp.MustCompile(`(^|\] )panic: `), "a Go panic"},
	{regexp.MustCompile(`goroutine \d+ \[running\]`), "a Go panic's stack trace"},
	{regexp.MustCompile(`kitinit panicked`), "a panic in kitinit"},
}

// kernelLine starts a line the kernel printed: its time stamp.
const kernelLine = `^\[\s*\d+\.\d{6}\] `

// Console lines the kernel prints when the guest powers off or restarts.
var (
	powerDownLine = regexp.MustCompile(`reboot: Power down`)
	restartLine   = regexp.MustCompile(`reboot: Restarting system`)
)

// bootError returns nil when a failed boot is what the test expects (a
// service or task it says fails, a guest that ends itself), else err.
func (s *session) bootError(err error) error {
	var (
		se *vm.ServiceError
		te *vm.TaskError
		xe *vm.ExitedError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && slices.Contains(s.tf.expected(KindServiceFails), se.Service):
		return nil
	case errors.As(err, &te) && slices.Contains(s.tf.expected(KindTaskFails), te.Task):
		return nil
	case errors.As(err, &xe) && (s.tf.has(KindHaltsItself) || s.tf.has(KindRebootsItself)):
		return nil
	}
	return err
}

// check runs one assertion. ctx carries the test's deadline.
func (s *session) check(ctx context.Context, a Assertion) error {
	if a.Timeout > 0 && a.Kind != KindExec && a.Kind != KindTCP && a.Kind != KindShutdown {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	switch a.Kind {
	case KindServicesReady:
		for _, n := range a.Names {
			if err := s.waitGuestEvent(ctx, initproto.EvServiceReady, n, initproto.EvServiceFailed, "service "+n+" to be ready"); err != nil {
				return err
			}
		}
	case KindTasksSucceeded:
		for _, n := range a.Names {
			if err := s.waitGuestEvent(ctx, initproto.EvTaskDone, n, initproto.EvTaskFailed, "task "+n+" to succeed"); err != nil {
				return err
			}
		}
	case KindServiceFails:
		for _, n := range a.Names {
			if err := s.waitGuestEvent(ctx, initproto.EvServiceFailed, n, "", "service "+n+" to fail"); err != nil {
				return err
			}
		}
	case KindTaskFails:
		for _, n := range a.Names {
			if err := s.waitGuestEvent(ctx, initproto.EvTaskFailed, n, initproto.EvTaskDone, "task "+n+" to fail"); err != nil {
				return err
			}
			if a.Status != nil {
				if ev := s.findGuest(initproto.EvTaskFailed, n); ev.Status == nil || *ev.Status != *a.Status {
					return fmt.Errorf("task %s failed with %s, want exit status %d", n, ev.Detail, *a.Status)
				}
			}
		}
	case KindServiceRestarted:
		return s.waitRestarts(ctx, a.Names[0], a.Times)
	case KindEvent:
		return s.wait(ctx, "an event matching /"+a.Pattern.String()+"/", func(u Update) (bool, error) {
			return slices.ContainsFunc(u.Events, func(e Event) bool { return a.Pattern.MatchString(e.Stage().String()) }), nil
		})
	case KindEventsInOrder:
		return s.waitInOrder(ctx, a.Names)
	case KindConsole:
		return s.wait(ctx, "a console line matching /"+a.Pattern.String()+"/", func(u Update) (bool, error) {
			return slices.ContainsFunc(u.Lines, a.Pattern.MatchString) || (u.Partial != "" && a.Pattern.MatchString(u.Partial)), nil
		})
	case KindConsoleNot, KindAllowConsole:
		return nil // checked once the machine is gone (see finish)
	case KindTCP:
		return s.checkTCP(ctx, a)
	case KindExec:
		return s.checkExec(ctx, a)
	case KindFile:
		return s.checkFile(ctx, a)
	case KindShutdown:
		return s.checkShutdown(ctx, a)
	case KindHaltsItself, KindRebootsItself:
		return s.checkEndsItself(ctx, a)
	default:
		return fmt.Errorf("unknown assertion kind %q", a.Kind)
	}
	return nil
}

// wait waits on the record until cond holds; what names the awaited thing
// for messages.
func (s *session) wait(ctx context.Context, what string, cond func(Update) (bool, error)) error {
	start := time.Now()
	err := s.rec.Wait(ctx, s.g.Exited(), cond)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errExited):
		return fmt.Errorf("the machine exited (%s) while waiting for %s", exitDesc(s.g.ExitErr()), what)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("waited %s for %s (stage reached: %s)", time.Since(start).Round(100*time.Millisecond), what, s.g.Stage())
	}
	return err
}

func exitDesc(err error) string {
	if err == nil {
		return "cleanly"
	}
	return err.Error()
}

// waitGuestEvent waits for the guest event kind about name; an event of
// failKind about name fails at once.
func (s *session) waitGuestEvent(ctx context.Context, kind, name, failKind, what string) error {
	return s.wait(ctx, what, func(u Update) (bool, error) {
		for _, e := range u.Events {
			g := e.Guest
			if g == nil || g.Name != name {
				continue
			}
			switch g.Kind {
			case kind:
				return true, nil
			case failKind:
				return false, fmt.Errorf("%s: %s", e.Stage().String(), describeGuestEvent(g))
			}
		}
		return false, nil
	})
}

func describeGuestEvent(g *initproto.Event) string {
	msg := g.Detail
	if msg == "" {
		msg = g.Kind
	}
	if len(g.Log) > 0 {
		msg += "\n--- its last output ---\n" + strings.Join(g.Log, "\n")
	}
	return msg
}

func (s *session) findGuest(kind, name string) initproto.Event {
	for _, e := range s.rec.Events() {
		if e.Guest != nil && e.Guest.Kind == kind && e.Guest.Name == name {
			return *e.Guest
		}
	}
	return initproto.Event{}
}

func (s *session) waitRestarts(ctx context.Context, name string, times int) error {
	what := fmt.Sprintf("service %s to be restarted %d time(s)", name, times)
	n := 0
	return s.wait(ctx, what, func(u Update) (bool, error) {
		for _, e := range u.Events {
			if g := e.Guest; g != nil && g.Name == name {
				switch g.Kind {
				case initproto.EvServiceStart:
					if strings.HasPrefix(g.Detail, "restart") {
						n++
					}
				case initproto.EvServiceFailed:
					return false, fmt.Errorf("service %s failed after %d restart(s): %s", name, n, describeGuestEvent(g))
				}
			}
		}
		return n >= times, nil
	})
}

func (s *session) waitInOrder(ctx context.Context, names []string) error {
	var seen []string
	i := 0
	err := s.wait(ctx, "the events "+strings.Join(names, ", ")+" in this order", func(u Update) (bool, error) {
		for _, e := range u.Events {
			seen = append(seen, e.Stage().String())
			if i < len(names) && e.Stage().String() == names[i] {
				i++
			}
		}
		return i == len(names), nil
	})
	if err != nil {
		return fmt.Errorf("%w; events seen: %s", err, strings.Join(seen, ", "))
	}
	return nil
}

// checkTCP connects to the guest port through its host forward. QEMU's user
// networking accepts a host connection before it knows whether the guest
// listens, then closes it: reachable means data came back, or the
// connection stayed open a moment.
func (s *session) checkTCP(ctx context.Context, a Assertion) error {
	timeout := cmpOr(a.Timeout, 10*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr, err := s.g.Addr(a.Port)
	if err != nil {
		return err
	}
	var last error
	for {
		reply, err := tcpExchange(ctx, addr, a)
		if err == nil {
			return nil
		}
		last = err
		if reply != "" && a.Pattern != nil {
			last = fmt.Errorf("guest port %d (%s) answered %q, which does not match /%s/", a.Port, addr, clip(reply, 500), a.Pattern)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tcp %d: not reachable within %s: %v", a.Port, timeout, last)
		case <-s.g.Exited():
			return fmt.Errorf("tcp %d: the machine exited: %v", a.Port, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tcpExchange makes one attempt; it returns what the guest sent.
func tcpExchange(ctx context.Context, addr string, a Assertion) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if a.Send != "" {
		if _, err := io.WriteString(c, a.Send); err != nil {
			return "", err
		}
	}
	if a.Pattern == nil {
		// Open for a moment, or data: reachable. Closed at once: not.
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		var b [1]byte
		n, err := c.Read(b[:])
		if n > 0 {
			return string(b[:n]), nil
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return "", nil
		}
		return "", fmt.Errorf("connection closed at once (nothing listens on the guest port?)")
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if a.Pattern.Match(got) {
			return string(got), nil
		}
		if err != nil {
			if len(got) == 0 {
				return "", fmt.Errorf("no reply: %v", err)
			}
			return string(got), fmt.Errorf("reply does not match")
		}
	}
}

func (s *session) checkExec(ctx context.Context, a Assertion) error {
	timeout := cmpOr(a.Timeout, 30*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdin []byte
	if a.Stdin != "" {
		stdin = []byte(a.Stdin)
	}
	r, err := s.g.Exec(ctx, a.Cmd, stdin)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("exec %q did not finish within %s: %v", a.Cmd, timeout, err)
		}
		return fmt.Errorf("exec %q: %v", a.Cmd, err)
	}
	var problems []string
	if r.Signal != "" {
		problems = append(problems, "killed by signal "+r.Signal)
	} else if a.Status != nil && r.Status != *a.Status {
		problems = append(problems, fmt.Sprintf("exit status %d, want %d", r.Status, *a.Status))
	}
	if a.Stdout != nil && !a.Stdout.Match(r.Stdout) {
		problems = append(problems, fmt.Sprintf("stdout does not match /%s/", a.Stdout))
	}
	if a.Stderr != nil && !a.Stderr.Match(r.Stderr) {
		problems = append(problems, fmt.Sprintf("stderr does not match /%s/", a.Stderr))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("exec %q: %s\n--- stdout ---\n%s\n--- stderr ---\n%s", a.Cmd, strings.Join(problems, "; "),
		clip(string(r.Stdout), 2000), clip(string(r.Stderr), 2000))
}

// checkFile stats the path once, or, with a timeout, until it matches.
func (s *session) checkFile(ctx context.Context, a Assertion) error {
	for {
		err := s.fileOnce(ctx, a)
		if err == nil || a.Timeout == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-s.g.Exited():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *session) fileOnce(ctx context.Context, a Assertion) error {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fi, err := s.g.Stat(sctx, a.Path)
	if err != nil {
		return fmt.Errorf("file %s: %v", a.Path, err)
	}
	if !fi.Exists {
		if a.Exists {
			return fmt.Errorf("file %s does not exist", a.Path)
		}
		return nil
	}
	if !a.Exists {
		return fmt.Errorf("file %s exists (a %s), want it absent", a.Path, fi.Type)
	}
	var problems []string
	if a.Type != "" && fi.Type != a.Type {
		problems = append(problems, fmt.Sprintf("is a %s, want a %s", fi.Type, a.Type))
	}
	if a.Mode != "" && fi.Mode != a.Mode {
		problems = append(problems, fmt.Sprintf("mode %s, want %s", fi.Mode, a.Mode))
	}
	if a.UID != nil && fi.UID != *a.UID {
		problems = append(problems, fmt.Sprintf("uid %d, want %d", fi.UID, *a.UID))
	}
	if a.GID != nil && fi.GID != *a.GID {
		problems = append(problems, fmt.Sprintf("gid %d, want %d", fi.GID, *a.GID))
	}
	if a.Size != nil && fi.Size != *a.Size {
		problems = append(problems, fmt.Sprintf("size %d, want %d", fi.Size, *a.Size))
	}
	if a.Target != nil && fi.Target != *a.Target {
		problems = append(problems, fmt.Sprintf("points to %q, want %q", fi.Target, *a.Target))
	}
	if a.Contains != nil {
		switch {
		case fi.Type != "file":
			problems = append(problems, fmt.Sprintf("is a %s; contains applies to regular files", fi.Type))
		case fi.Content == nil && fi.Size > 0:
			problems = append(problems, fmt.Sprintf("content not available (%d bytes; kitrun-stat returns at most 1 MiB)", fi.Size))
		case !a.Contains.Match(fi.Content):
			problems = append(problems, fmt.Sprintf("content does not match /%s/:\n%s", a.Contains, clip(string(fi.Content), 1000)))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("file %s: %s", a.Path, strings.Join(problems, "; "))
}

func (s *session) checkShutdown(ctx context.Context, a Assertion) error {
	s.poweredOff = true
	start := time.Now()
	if err := s.g.Shutdown(ctx, a.Grace); err != nil {
		return fmt.Errorf("power-off was not clean: %v", err)
	}
	if err := s.g.ExitErr(); err != nil {
		return fmt.Errorf("the machine did not exit cleanly after power-off: %v", err)
	}
	evs := s.rec.Events()
	i := slices.IndexFunc(evs, func(e Event) bool { return e.Guest != nil && e.Guest.Kind == initproto.EvShutdown })
	if i < 0 {
		return fmt.Errorf("the guest powered off without kitinit's shutdown (no shutdown event; was it already gone?)")
	}
	if !slices.ContainsFunc(evs, func(e Event) bool { return e.Guest != nil && e.Guest.Kind == initproto.EvShutdownDone }) {
		return fmt.Errorf("kitinit's shutdown did not finish (no shutdown-done event within %s)", time.Since(start).Round(time.Millisecond))
	}
	for _, n := range a.ShutdownTasks {
		done := false
		for _, e := range evs[i:] {
			if g := e.Guest; g != nil && g.Name == n {
				switch g.Kind {
				case initproto.EvTaskDone:
					done = true
				case initproto.EvTaskFailed:
					return fmt.Errorf("onshutdown task %s failed: %s", n, describeGuestEvent(g))
				}
			}
		}
		if !done {
			return fmt.Errorf("onshutdown task %s did not run", n)
		}
	}
	return nil
}

func (s *session) checkEndsItself(ctx context.Context, a Assertion) error {
	s.poweredOff = true
	want, other, verb := powerDownLine, restartLine, "halt"
	if a.Kind == KindRebootsItself {
		want, other, verb = restartLine, powerDownLine, "reboot"
	}
	select {
	case <-s.g.Exited():
	case <-ctx.Done():
		return fmt.Errorf("the guest did not %s by itself in time (stage reached: %s)", verb, s.g.Stage())
	}
	if err := s.g.ExitErr(); err != nil {
		return fmt.Errorf("the machine did not exit cleanly: %v", err)
	}
	// The hypervisor's word (QEMU's SHUTDOWN reason) settles it where the
	// backend gives it; the kernel's last console line otherwise (a
	// console may lose it: s390x's SCLP console is not flushed after the
	// kernel says it).
	wantHV, otherHV := "poweroff", "reset"
	if a.Kind == KindRebootsItself {
		wantHV, otherHV = otherHV, wantHV
	}
	guestShutdown := func(d string) bool {
		return slices.ContainsFunc(s.rec.Events(), func(e Event) bool {
			return e.Guest == nil && e.Kind == hypervisor.EvGuestShutdown && e.Detail == d
		})
	}
	lines := s.rec.Lines()
	switch {
	case guestShutdown(wantHV):
		return nil
	case guestShutdown(otherHV):
		if verb == "halt" {
			return fmt.Errorf("the guest reset the machine instead of powering off (the hypervisor says %s)", otherHV)
		}
		return fmt.Errorf("the guest powered off instead of restarting (the hypervisor says %s)", otherHV)
	case slices.ContainsFunc(lines, want.MatchString):
		return nil
	case slices.ContainsFunc(lines, other.MatchString):
		if verb == "halt" {
			return fmt.Errorf("the guest restarted instead of powering off (console: %q)", restartLine)
		}
		return fmt.Errorf("the guest powered off instead of restarting (console: %q)", powerDownLine)
	}
	return fmt.Errorf("the machine exited, but the kernel never said %q: it did not %s by itself", want, verb)
}

// finish runs the checks made once the machine is gone: console_not, and
// unless the test opts out, the implicit ones.
func (s *session) finish() []AssertionResult {
	var out []AssertionResult
	lines := s.rec.Lines()
	for _, a := range s.tf.Expect {
		if a.Kind != KindConsoleNot {
			continue
		}
		r := AssertionResult{Kind: a.Kind, Text: a.Text, Pos: a.Pos.String(), Outcome: OutcomePassed}
		for i, l := range lines {
			if a.Pattern.MatchString(l) {
				r.Outcome, r.Message = OutcomeFailed, fmt.Sprintf("console line %d matches /%s/: %s", i+1, a.Pattern, l)
				break
			}
		}
		out = append(out, r)
	}
	if !s.tf.Implicit {
		return out
	}
	r := AssertionResult{Kind: "implicit", Text: "console shows no panic, BUG, oops or kernel warning", Implicit: true, Outcome: OutcomePassed}
	var bad []string
	for i, l := range lines {
		if slices.ContainsFunc(s.tf.AllowConsole, func(re *regexp.Regexp) bool { return re.MatchString(l) }) {
			continue
		}
		for _, p := range implicitConsole {
			if p.re.MatchString(l) {
				bad = append(bad, fmt.Sprintf("console line %d: %s (%s)", i+1, l, p.what))
				break
			}
		}
	}
	if len(bad) > 0 {
		r.Outcome = OutcomeFailed
		r.Message = strings.Join(clipList(bad, 10), "\n") + "\n(allow expected lines with allow_console: [REGEX])"
	}
	out = append(out, r)

	r = AssertionResult{Kind: "implicit", Text: "no service or onboot task failed unless expected, and kitinit reported no error", Implicit: true, Outcome: OutcomePassed}
	bad = nil
	okServices, okTasks := s.tf.expected(KindServiceFails), s.tf.expected(KindTaskFails)
	for _, e := range s.rec.Events() {
		g := e.Guest
		if g == nil {
			continue
		}
		switch {
		case g.Kind == initproto.EvServiceFailed && !slices.Contains(okServices, g.Name):
			bad = append(bad, "service "+g.Name+" failed: "+describeGuestEvent(g))
		case g.Kind == initproto.EvTaskFailed && !slices.Contains(okTasks, g.Name):
			bad = append(bad, "task "+g.Name+" failed: "+describeGuestEvent(g))
		case g.Kind == initproto.EvError:
			bad = append(bad, "kitinit reported an error: "+g.Detail)
		}
	}
	if len(bad) > 0 {
		r.Outcome, r.Message = OutcomeFailed, strings.Join(bad, "\n")
	}
	out = append(out, r)
	return out
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func clipList(l []string, n int) []string {
	if len(l) <= n {
		return l
	}
	return append(l[:n:n], fmt.Sprintf("… and %d more", len(l)-n))
}
