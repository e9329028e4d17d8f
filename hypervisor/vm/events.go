package vm

import (
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
)

// Event is something the machine reported, stamped with the host's time
// since the machine was started. kitinit's events carry the guest's own
// uptime too; the two clocks are never compared directly.
type Event struct {
	Host time.Duration
	// Guest is kitinit's event; nil for the host's own observations.
	Guest *initproto.Event
	// Kind and Detail are set for the host's observations: a backend's
	// (hypervisor.EvVMMReady, EvGuestPanic, EvPowerdown, EvExited) or
	// this package's (StageFirmware, StageKernel, EvChannelError,
	// EvConsoleError).
	Kind   string
	Detail string
}

// Host-side event kinds this package adds to the backend's.
const (
	// StageFirmware: the first byte on the console, before the kernel's
	// first line (the firmware or boot loader talking). Direct kernel
	// boots have none.
	StageFirmware = "firmware"
	// StageKernel: the first kernel line (printk time stamp) on the
	// console.
	StageKernel = "kernel-start"
	// EvChannelError: a line on the event channel that is not a valid
	// event (damaged, too long, garbage).
	EvChannelError = "channel-error"
	// StageStarted is the stage of a machine that has reported nothing.
	StageStarted = "started"
)

// Stage names a point of the boot: a kind ("service-ready") and, for the
// kinds about one task or service, its name.
type Stage struct {
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
}

// String renders the stage as people read it: "service-ready web".
func (s Stage) String() string {
	if s.Name != "" {
		return s.Kind + " " + s.Name
	}
	return s.Kind
}

// Stage is the event's stage, guest or host side.
func (e Event) Stage() Stage {
	if e.Guest != nil {
		return Stage{Kind: e.Guest.Kind, Name: e.Guest.Name}
	}
	return Stage{Kind: e.Kind}
}

// Mark is one stage of the boot on both clocks.
type Mark struct {
	Stage Stage `json:"stage"`
	// Host is the time since the machine was started.
	Host time.Duration `json:"host"`
	// Guest is the guest's uptime at the mark; negative when the mark is
	// host-side only.
	Guest float64 `json:"guest"`
}

// maxQueued bounds the events waiting for a slow OnEvent. A guest that
// floods its channel faster than OnEvent keeps up loses the excess in
// OnEvent only (counted, and reported as one EvChannelError); the VM's own
// state never misses an event.
const maxQueued = 10000

// eventQueue delivers events to OnEvent on a goroutine of its own, in
// order.
type eventQueue struct {
	on      func(Event)
	mu      sync.Mutex
	q       []Event
	dropped int
	wake    chan struct{}
	closed  bool
	done    chan struct{}
}

func newEventQueue(on func(Event)) *eventQueue {
	q := &eventQueue{on: on, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if on == nil {
		close(q.done)
		return q
	}
	go q.run()
	return q
}

func (q *eventQueue) push(ev Event) {
	if q.on == nil {
		return
	}
	q.mu.Lock()
	if len(q.q) >= maxQueued {
		q.dropped++
	} else {
		q.q = append(q.q, ev)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close delivers what is queued, then ends; it returns once OnEvent has
// seen the last event.
func (q *eventQueue) close() {
	if q.on == nil {
		return
	}
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}

func (q *eventQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch, dropped, closed := q.q, q.dropped, q.closed
		q.q, q.dropped = nil, 0
		q.mu.Unlock()
		if dropped > 0 {
			q.on(Event{Kind: EvChannelError, Detail: "events arrived faster than they were handled; " + itoa(dropped) + " not shown"})
		}
		for _, ev := range batch {
			q.on(ev)
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-q.wake
		}
	}
}
