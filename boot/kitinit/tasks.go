//go:build linux

package kitinit

import (
	"time"

	"github.com/kitrun/kitrun/boot/initproto"
	"golang.org/x/sys/unix"
)

// runTask runs an onboot (gated) or onshutdown task to completion under its
// timeout (zero: none) and reports task-done or task-failed. It returns
// whether the task succeeded.
func (k *kitinit) runTask(t initproto.Task, gated bool) bool {
	out := k.newOutput(t.Name)
	p, err := k.spawn(t.Exec, nil, out, nil, gated)
	if err == errStopping {
		return false
	}
	if err != nil {
		k.ev.emit(initproto.Event{Kind: initproto.EvTaskFailed, Name: t.Name,
			Detail: "cannot start " + t.Exec.Path + ": " + err.Error()})
		return false
	}
	var timeout <-chan time.Time
	if t.Timeout > 0 {
		tm := time.NewTimer(time.Duration(t.Timeout))
		defer tm.Stop()
		timeout = tm.C
	}
	var ws unix.WaitStatus
	timedOut := false
	select {
	case ws = <-p.exit:
	case <-timeout:
		timedOut = true
		killGroup(p.pid, unix.SIGKILL)
		ws = <-p.exit
	}
	k.removeLive(p.pid)
	code := exitCode(ws)
	if !timedOut && code == 0 {
		k.ev.emit(initproto.Event{Kind: initproto.EvTaskDone, Name: t.Name, Status: &code})
		return true
	}
	detail := describeExit(ws)
	if timedOut {
		detail = "timed out after " + time.Duration(t.Timeout).String()
	}
	p.drain()
	k.ev.emit(initproto.Event{Kind: initproto.EvTaskFailed, Name: t.Name, Status: &code,
		Detail: detail, Log: out.last()})
	return false
}
