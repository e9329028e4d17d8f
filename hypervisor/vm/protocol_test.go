package vm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitrun/kitrun/boot/image"
	"github.com/kitrun/kitrun/boot/initproto"
	"github.com/kitrun/kitrun/hypervisor"
	"github.com/kitrun/kitrun/hypervisor/fake"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// Tests of the protocol the vm package owns, on the fake backend: a guest
// that floods, forges or garbles must not make kitrun believe it, hold it
// up, or make it hold unbounded memory.

func bootFake(t *testing.T, b *fake.Backend, opts vm.Options) (*vm.VM, *lockedBuf) {
	t.Helper()
	img := fakeImage(t, image.Manifest{Name: "guest", Services: []string{"web"}})
	var con lockedBuf
	if opts.Console == nil {
		opts.Console = &con
	}
	v, err := vm.Boot(context.Background(), b, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Kill() })
	return v, &con
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSlowConsumerLosesNothingForTheBoot: OnEvent that takes its time
// never delays or loses the boot's own state: a thousand events before
// all-ready, and WaitReady still sees all-ready.
func TestSlowConsumerLosesNothingForTheBoot(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	b := &fake.Backend{Script: func(g *fake.Guest) {
		g.Emit(initproto.Event{Kind: initproto.EvInitStart})
		for i := range 1000 {
			g.Emit(initproto.Event{Kind: initproto.EvServiceExit, Name: "web", Detail: fmt.Sprint(i)})
		}
		fake.Boot(g)
		fake.ServeUntilPoweroff(g)
	}}
	v, _ := bootFake(t, b, vm.Options{OnEvent: func(e vm.Event) {
		time.Sleep(time.Millisecond)
		mu.Lock()
		seen = append(seen, e.Stage().String())
		mu.Unlock()
	}})
	if err := v.WaitReady(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Every event reached OnEvent too (the queue holds far more than
	// this), in order, before Exited.
	if n := strings.Count(strings.Join(seen, "\n"), "service-exited web"); n != 1000 {
		t.Errorf("OnEvent saw %d of 1000 service-exited events", n)
	}
	if i, j := index(seen, "all-ready"), index(seen, "shutdown-done"); i < 0 || j < i {
		t.Errorf("OnEvent order: all-ready at %d, shutdown-done at %d", i, j)
	}
}

func index(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// TestHugeConsoleLineIsCut: one 64 MiB console line without a newline is
// passed on to the console writer as it comes, but kept only in part, and
// kitrun's heap does not grow with it.
func TestHugeConsoleLineIsCut(t *testing.T) {
	const size = 64 << 20
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	b := &fake.Backend{Script: func(g *fake.Guest) {
		g.Emit(initproto.Event{Kind: initproto.EvInitStart})
		for range size / len(chunk) {
			g.Write(chunk)
		}
		g.Write([]byte("\n"))
		fake.Boot(g)
		fake.ServeUntilPoweroff(g)
	}}
	var counted countingWriter
	runtime.GC()
	before := heapInUse()
	v, _ := bootFake(t, b, vm.Options{Console: &counted})
	if err := v.WaitReady(context.Background(), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	grew := heapInUse() - before
	// The console and the channel are read concurrently: the console may
	// still be catching up with all-ready.
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if counted.n() < size {
		t.Errorf("console writer got %d bytes, want all %d", counted.n(), size)
	}
	var long string
	for _, l := range v.ConsoleTail(200) {
		if strings.HasPrefix(l, "xxxx") {
			long = l
		}
	}
	if len(long) > 5000 || !strings.Contains(long, "bytes cut]") {
		t.Errorf("the long line is kept as %d bytes (%q…)", len(long), long[max(0, len(long)-40):])
	}
	if grew > 32<<20 {
		t.Errorf("heap grew by %d MiB reading a %d MiB line", grew>>20, size>>20)
	}
	t.Logf("heap grew by %.1f MiB for a %d MiB line", float64(grew)/(1<<20), size>>20)
}

type countingWriter struct {
	mu sync.Mutex
	c  int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.c += len(p)
	w.mu.Unlock()
	return len(p), nil
}

func (w *countingWriter) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestChannelFloodAndGarbage: an event line beyond the limit, garbage, a
// line with a wrong checksum and an unframed forgery are reported as
// channel errors and change nothing; the boot goes on.
func TestChannelFloodAndGarbage(t *testing.T) {
	forged := `@kitrun {"t":1,"ev":"service-failed","name":"web","detail":"forged"}` + "\n"
	good := initproto.Event{Kind: initproto.EvServiceFailed, Name: "web", Detail: "forged"}.Encode()
	damaged := bytes.Replace(good, []byte("forged"), []byte("forgeD"), 1)
	b := &fake.Backend{Script: func(g *fake.Guest) {
		g.Emit(initproto.Event{Kind: initproto.EvInitStart})
		g.EmitRaw(bytes.Repeat([]byte("y"), 8<<20))
		g.EmitRaw([]byte("\n"))
		g.EmitRaw([]byte("\x00\x01garbage\n"))
		g.EmitRaw([]byte(forged))
		g.EmitRaw(damaged)
		fake.Boot(g)
		fake.ServeUntilPoweroff(g)
	}}
	var mu sync.Mutex
	var errs []string
	v, _ := bootFake(t, b, vm.Options{OnEvent: func(e vm.Event) {
		if e.Kind == vm.EvChannelError {
			mu.Lock()
			errs = append(errs, e.Detail)
			mu.Unlock()
		}
	}})
	if err := v.WaitReady(context.Background(), 30*time.Second); err != nil {
		t.Fatalf("a garbled channel failed the boot: %v", err)
	}
	v.Shutdown(context.Background(), 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	want := []string{"over the limit", "not an event line", "without a checksum", "damaged"}
	if len(errs) != len(want) {
		t.Fatalf("channel errors %q, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(errs[i], w) {
			t.Errorf("channel error %d: %q, want %q", i, errs[i], w)
		}
	}
	for _, s := range v.Services() {
		if s.Failed {
			t.Errorf("a forged line marked %s failed", s.Name)
		}
	}
}

// TestOnlyKernelLinesArePanics: console lines that talk about a panic —
// a service's relayed output, a line with the message in the middle, a
// time stamp after other text — are not panics; the kernel's own line is.
func TestOnlyKernelLinesArePanics(t *testing.T) {
	lines := []string{
		"[web] Kernel panic - not syncing: fake",
		"[web] [    1.234567] Kernel panic - not syncing: fake",
		"service says: Kernel panic - not syncing",
		" [    1.234567] Kernel panic - not syncing: indented",
	}
	b := &fake.Backend{Script: func(g *fake.Guest) {
		g.Emit(initproto.Event{Kind: initproto.EvInitStart})
		for _, l := range lines {
			g.Say(l)
		}
		fake.Boot(g)
		fake.ServeUntilPoweroff(g)
	}}
	v, _ := bootFake(t, b, vm.Options{})
	if err := v.WaitReady(context.Background(), 30*time.Second); err != nil {
		t.Fatalf("console text about panics was taken for a panic: %v", err)
	}

	b = &fake.Backend{Script: func(g *fake.Guest) {
		g.Emit(initproto.Event{Kind: initproto.EvInitStart})
		g.Say("[    2.000000] Kernel panic - not syncing: VFS: Unable to mount root fs")
		g.Exit(errors.New("guest reset"))
	}}
	v, _ = bootFake(t, b, vm.Options{})
	var pe *vm.PanicError
	if err := v.WaitReady(context.Background(), 30*time.Second); !errors.As(err, &pe) {
		t.Fatalf("the kernel's panic line: got %v, want a PanicError", err)
	}
	if !strings.Contains(pe.Line, "Unable to mount root fs") {
		t.Errorf("panic line %q", pe.Line)
	}
}

// TestSharedChannel: where the channel shares the console, events are
// picked out of the console's lines (and not shown as console output),
// console lines pass through, and a damaged event line is reported.
func TestSharedChannel(t *testing.T) {
	b := &fake.Backend{SharedChannel: true, Script: func(g *fake.Guest) {
		g.Say("[    0.100000] Linux version 6.1")
		g.Emit(initproto.Event{Kind: initproto.EvInitStart})
		g.Write([]byte("partial "))
		g.Write([]byte("line\n"))
		g.Write(bytes.Replace(initproto.Event{Kind: initproto.EvAllReady}.Encode(), []byte("all"), []byte("ALL"), 1))
		fake.Boot(g)
		fake.ServeUntilPoweroff(g)
	}}
	var errs []string
	var mu sync.Mutex
	v, con := bootFake(t, b, vm.Options{OnEvent: func(e vm.Event) {
		if e.Kind == vm.EvChannelError {
			mu.Lock()
			errs = append(errs, e.Detail)
			mu.Unlock()
		}
	}})
	if v.Machine.Channel() != nil {
		t.Fatal("a shared channel has no stream of its own")
	}
	if err := v.WaitReady(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := v.Shutdown(context.Background(), 10*time.Second); err != nil {
		t.Fatalf("shutdown by the power button alone: %v", err)
	}
	out := con.String()
	if strings.Contains(out, initproto.Prefix) {
		t.Errorf("event lines reached the console writer:\n%s", out)
	}
	for _, want := range []string{"Linux version 6.1", "partial line", "kitinit: all ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 || !strings.Contains(errs[0], "damaged") {
		t.Errorf("channel errors %q, want one damaged line", errs)
	}
	if err := v.Send(context.Background(), initproto.CmdMemory); err == nil {
		t.Error("Send on a shared channel must fail: kitinit cannot hear it")
	}
}

// TestFirmwareAndKernelStages: the first console byte and the first kernel
// line are stages of the timeline.
func TestFirmwareAndKernelStages(t *testing.T) {
	b := &fake.Backend{Script: func(g *fake.Guest) {
		g.Write([]byte("\x1bcSeaBIOS (version 1.16)\r\n"))
		g.Say("[    0.000000] Linux version 6.1")
		time.Sleep(20 * time.Millisecond) // a kernel takes its time before init
		fake.Boot(g)
		fake.ServeUntilPoweroff(g)
	}}
	v, _ := bootFake(t, b, vm.Options{})
	if err := v.WaitReady(context.Background(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range v.Timeline() {
		got = append(got, m.Stage.String())
	}
	assertOrder(t, got, []string{hypervisor.EvVMMReady, vm.StageFirmware, vm.StageKernel, "init-start", "all-ready"})
}
