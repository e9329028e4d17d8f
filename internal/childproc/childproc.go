// Package childproc owns how kitrun and its test doubles start the
// processes they own: from a thread kept until the child is reaped
// (StartLocked, which Linux's parent-death signal needs), and for test
// doubles (the cloud fakes' QEMU and emulators, disk tests' QEMU) in a
// process group of their own, dying with the test process where the OS
// offers a parent-death signal (Linux) and killed as a group. kitrun's own
// QEMU teardown, which holds on every OS, is hypervisor/qemu's
// (teardown.go).
package childproc
