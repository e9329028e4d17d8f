package testcases

// The only place that touches the SSH side of boot/assemble and
// hypervisor/vm: building an image with the guest SSH server, booting it
// with per-run keys, and running commands and stats over SSH.

import (
	"context"

	"github.com/kitrun/kitrun/boot/assemble"
	"github.com/kitrun/kitrun/hypervisor/vm"
)

// ExecResult is how a command run in the guest ended.
type ExecResult = vm.ExecResult

// FileInfo describes a guest path (the guest's kitrun-stat answer).
type FileInfo = vm.FileInfo

func assembleWithSSH(o *assemble.Options) { o.SSH = true }

func bootWithSSH(o *vm.Options) { o.SSH = true }

func guestExec(ctx context.Context, v *vm.VM, cmd string, stdin []byte) (ExecResult, error) {
	return v.Exec(ctx, cmd, stdin)
}

func guestStat(ctx context.Context, v *vm.VM, path string) (FileInfo, error) {
	return v.Stat(ctx, path)
}
