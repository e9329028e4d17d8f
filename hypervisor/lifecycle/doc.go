// Package lifecycle runs kitrun VMs detached from any terminal and keeps
// their state on disk, so that later kitrun commands (ps, logs, console,
// pause, resume, stop, kill, rm, inspect, prune) can find, drive and clean
// them up — and tell the truth about them after a crash.
//
// # One supervisor per VM
//
// `kitrun run -d` builds the image, records the VM in the state directory
// (Store.Create: meta.json and state.json written into a hidden temporary
// directory, then renamed into place with RENAME_NOREPLACE, so a name clash is
// detected atomically and no half-created VM is ever visible), and re-executes
// the kitrun binary as the hidden command
//
//	kitrun supervise --state-dir D --report-fd 3 NAME
//
// in a new session (setsid), with stdin from /dev/null, stdout and stderr to
// D/NAME/supervisor.log and its working directory at /. That supervisor
// (Supervise) boots the image with hypervisor/vm on the QEMU backend exactly
// as `kitrun run` does, and reports "booting", then "ready" or "failed" on the
// pipe at fd 3; `run -d` returns on that report with run's exit codes.
//
// Why a supervisor process rather than a QEMU daemonised on its own: QEMU keeps
// its parent-death signal (the supervisor is its parent), so QEMU can never
// outlive it, not even after kill -9; the console and the event channel are
// still socketpairs held by a kitrun process, so every byte is captured with
// no terminal attached; and one small Go process per VM is the single writer
// of that VM's state while it runs.
//
// # Files
//
// Per VM, D/NAME/ holds:
//
//	meta.json       what was asked for and what was booted (Meta); written at
//	                creation, completed once QEMU started (accel used, …)
//	state.json      the current state (State), written by the supervisor at
//	                every transition, by clients only when the supervisor is
//	                gone (crash recovery)
//	console.log     the guest console; rotated at 8 MiB to console.log.1
//	events.log      one line per event: host time, kind, name, detail
//	supervisor.log  the supervisor's own output
//	control.sock    the supervisor's control socket, while it runs
//	run/            QEMU's runtime directory (its QMP socket)
//	lock            flock(2)ed by every command that changes the VM
//
// JSON files are written atomically (temporary file, fsync, rename); readers
// still treat an empty, truncated or otherwise unreadable file as a
// CorruptError with the path and a way out, never a panic.
//
// # Control protocol
//
// control.sock speaks JSON lines: the client sends one request
// ({"op":"status"|"stop"|"kill"|"pause"|"resume"|"attach", "timeout":"30s"}),
// the supervisor answers one response line ({"ok":…, "error":…, "state":…}).
// stop and kill answer twice: once when accepted (the client then releases the
// VM's lock, so that a kill can overtake a slow stop), once when the machine
// is gone and the final state is recorded. After attach's answer the
// connection carries raw bytes: console output to the client, the client's
// input to the guest console. Both sides put deadlines on every read and
// write of the request and the answers (a silent client is dropped after 5s);
// only an attached console's stream is open-ended.
//
// # States and the truth
//
// A VM is creating, booting, ready, paused or stopping while its supervisor
// runs, and stopped or failed after. The supervisor records its pid and the
// process start time from /proc/PID/stat, QEMU's likewise, and the host's
// boot id. Readers (Store.Get, Store.List) check them: a running state whose
// supervisor is not alive, or whose pid now belongs to another process, or
// which was recorded before the host rebooted, is reported failed with the
// reason ("supervisor died (pid 1234)"). The correction is persisted, and a
// QEMU that somehow survived its supervisor killed, by whoever reads it while
// the VM's lock is free (or holds it).
//
// # Locking
//
// Commands that change a VM (stop, kill, pause, resume, rm, prune, and
// persisting a correction) hold flock(2) on D/NAME/lock, waiting at most a
// deadline and then naming the holder. They hold it for the transition, not
// for the wait that may follow: stop waits for the guest's power-off without
// it. The supervisor never takes the lock: while it is alive it is the only
// writer of state.json.
package lifecycle
