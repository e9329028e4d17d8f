// Package childproc owns how test doubles (the cloud fakes' QEMU, disk
// tests' QEMU) start the processes they own: in a process group of their
// own, dying with the test process where the OS offers a parent-death
// signal (Linux), and killed as a group. kitrun's own QEMU teardown is
// hypervisor/qemu's (teardown.go), which holds on every OS.
package childproc
