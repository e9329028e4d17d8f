//go:build linux

// Package kitinit is the guest's PID 1. It owns everything that happens inside
// the VM between the kernel starting init and the power going off: mounting
// the pseudo filesystems, loading kernel modules, opening the event channel
// named on the kernel command line, hostname and network setup (static, or a
// DHCPv4 lease kept renewed for as long as the guest runs), running
// the onboot tasks, starting and supervising the services (restart policies,
// readiness probes, output logging), reaping every process, answering the
// host's commands, and the graceful shutdown (onshutdown tasks, TERM then KILL,
// sync, power off or reboot).
//
// Its only inputs are initproto.Config (written by the assembler) and the
// kernel command line; its only outputs are initproto events on the channel,
// human-readable lines on the console and service logs under /run/log.
//
// Every action that only PID 1 on a real guest may perform (mounts, module
// loading, hostname, network, killing all processes, reboot) goes through the
// System interface, so that the orchestration in Run can be exercised by an
// ordinary process in tests with a fake System. Main is the real entry point.
//
// Every child process is started through the Reaper, the only place that
// waits for children: it reaps everything, orphans included, and hands exit
// statuses to the task runner, the service supervisors and the exec probes.
package kitinit
