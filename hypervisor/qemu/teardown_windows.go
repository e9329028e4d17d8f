package qemu

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// newGroup keeps a console's Ctrl-C from reaching the watchdog and QEMU.
func newGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// killGroup kills QEMU, then the watchdog (whose job object would take
// QEMU with it anyway).
func killGroup(watchdog *os.Process, qemuPID int) error {
	var errs []error
	if qemuPID > 0 {
		if p, err := os.FindProcess(qemuPID); err == nil {
			if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, err)
			}
			p.Release()
		}
	}
	if err := watchdog.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// watchdogJob is kept open for the watchdog's life: closing it (the
// watchdog's death, however it dies) kills every process in it.
var watchdogJob windows.Handle

// attachQEMU puts QEMU in a job object that kills it when the watchdog's
// handle closes: should the watchdog itself be killed, QEMU still goes.
// Best effort: the lifeline alone covers kitrun's death.
func attachQEMU(p *os.Process) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(p.Pid))
	if err != nil {
		windows.CloseHandle(job)
		return
	}
	defer windows.CloseHandle(h)
	if windows.AssignProcessToJobObject(job, h) != nil {
		windows.CloseHandle(job)
		return
	}
	watchdogJob = job
}
