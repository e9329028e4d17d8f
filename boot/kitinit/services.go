//go:build linux

package kitinit

import (
	"sync"
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
)

const (
	defaultBackoff    = 100 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
)

// service is a supervised service.
type service struct {
	cfg      initproto.Service
	out      *output
	probe    *probe // nil: ready when started
	probeErr error  // a probe kitinit cannot run

	mu    sync.Mutex
	pid   int  // running main process, 0 if none
	ready bool // has been ready at least once
}

func (s *service) setPid(pid int) {
	s.mu.Lock()
	s.pid = pid
	s.mu.Unlock()
}

func (s *service) runningPid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

func (s *service) wasReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// startServices starts every service's supervisor at once.
func (k *kitinit) startServices() {
	k.readyMu.Lock()
	k.notReady = len(k.services)
	k.readyMu.Unlock()
	if len(k.services) == 0 {
		k.allReady()
		return
	}
	for _, s := range k.services {
		go k.supervise(s)
	}
}

// markReady records that s passed its probe (or has none); the first time
// every service has, it reports all-ready.
func (k *kitinit) markReady(s *service) {
	s.mu.Lock()
	was := s.ready
	s.ready = true
	s.mu.Unlock()
	if was {
		return
	}
	k.ev.emit(initproto.Event{Kind: initproto.EvServiceReady, Name: s.cfg.Name})
	k.readyMu.Lock()
	k.notReady--
	all := k.notReady == 0
	k.readyMu.Unlock()
	if all {
		k.allReady()
	}
}

func (k *kitinit) allReady() {
	if k.isStopping() {
		return
	}
	k.ev.emit(initproto.Event{Kind: initproto.EvAllReady})
	k.settled()
}

func (k *kitinit) isStopping() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopping
}

// supervise runs s and restarts it according to its policy until the policy
// gives up or shutdown begins.
func (k *kitinit) supervise(s *service) {
	defer k.recoverGo("service " + s.cfg.Name)
	name := s.cfg.Name
	pol := s.cfg.Restart
	backoff := time.Duration(pol.Backoff)
	if backoff <= 0 {
		backoff = defaultBackoff
	}
	maxBackoff := max(time.Duration(pol.MaxBackoff), backoff)
	if pol.MaxBackoff <= 0 {
		maxBackoff = max(defaultMaxBackoff, backoff)
	}
	for restarts := 0; ; restarts++ {
		var w *logWatch
		if s.probe != nil && s.probe.re != nil && !s.wasReady() {
			w = newLogWatch(s.probe.re)
		}
		p, err := k.spawn(s.cfg.Exec, nil, s.out, w, true)
		if err == errStopping {
			return
		}
		var status *int
		var detail string
		failed := true
		if err != nil {
			detail = "cannot start " + s.cfg.Exec.Path + ": " + err.Error()
		} else {
			s.setPid(p.pid)
			ev := initproto.Event{Kind: initproto.EvServiceStart, Name: name}
			if restarts > 0 {
				ev.Detail = "restart " + itoa(restarts)
			}
			k.ev.emit(ev)
			runDone := make(chan struct{})
			if !s.wasReady() {
				k.startProbe(s, w, runDone)
			}
			ws := k.wait(p)
			close(runDone)
			s.setPid(0)
			if k.isStopping() {
				k.con.write("kitinit: service " + name + " stopped: " + describeExit(ws) + "\n")
				return
			}
			code := exitCode(ws)
			status, detail, failed = &code, describeExit(ws), code != 0
			p.drain()
		}
		restart := false
		switch pol.Policy {
		case initproto.RestartAlways:
			restart = true
		case initproto.RestartNever:
		default: // on-failure is the default policy
			restart = failed
		}
		if restart && pol.MaxRestarts > 0 && restarts >= pol.MaxRestarts {
			restart = false
			detail += " (gave up after " + itoa(restarts) + " restarts)"
		}
		if !restart {
			k.ev.emit(initproto.Event{Kind: initproto.EvServiceFailed, Name: name,
				Status: status, Detail: detail, Log: s.out.last()})
			k.settled()
			return
		}
		k.ev.emit(initproto.Event{Kind: initproto.EvServiceExit, Name: name, Status: status,
			Detail: detail + "; restarting in " + backoff.String(), Log: s.out.last()})
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-k.stopCh:
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// startProbe watches one run of s until it is ready, its probe times out,
// or the run ends.
func (k *kitinit) startProbe(s *service, w *logWatch, runDone chan struct{}) {
	if s.probeErr != nil {
		k.ev.emit(initproto.Event{Kind: initproto.EvServiceFailed, Name: s.cfg.Name,
			Detail: "bad ready probe: " + s.probeErr.Error()})
		k.settled()
		return
	}
	if s.probe == nil {
		k.markReady(s)
		return
	}
	go func() {
		defer k.recoverGo("probe of " + s.cfg.Name)
		stop := make(chan struct{})
		go func() {
			select {
			case <-runDone:
			case <-k.stopCh:
			}
			close(stop)
		}()
		switch s.probe.run(k, w, stop) {
		case probeReady:
			k.markReady(s)
		case probeTimedOut:
			k.ev.emit(initproto.Event{Kind: initproto.EvServiceFailed, Name: s.cfg.Name,
				Detail: "ready probe " + s.probe.desc + " did not succeed within " + s.probe.timeout.String(),
				Log:    s.out.last()})
			k.settled()
		}
	}()
}

// running lists the pids of running services, for the memory command.
func (k *kitinit) running() map[string]int {
	m := map[string]int{}
	for _, s := range k.services {
		if pid := s.runningPid(); pid != 0 {
			m[s.cfg.Name] = pid
		}
	}
	return m
}
