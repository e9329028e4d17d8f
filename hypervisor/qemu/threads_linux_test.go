package qemu_test

import "runtime"

// The main goroutine holds the main thread for the whole test binary. The
// runtime never ends the main thread: a goroutine that exits while locked
// to it only parks it. Were a test's locked goroutine to land on the main
// thread, its exit would retire nothing, and the tests of what happens when
// the thread that forked QEMU goes away would pass whatever the code does.
func init() { runtime.LockOSThread() }
