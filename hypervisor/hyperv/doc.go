// Package hyperv is kitrun's Hyper-V backend: each machine is a
// generation 2 Hyper-V VM, driven by PowerShell that runs on the Windows
// host itself (pwsh or powershell.exe) or over SSH (golang.org/x/crypto/ssh
// to Windows' OpenSSH server, the host key pinned from a known_hosts file).
//
// # Layers
//
// Backend (hypervisor.Backend) holds the logic: which images boot (the vhdx
// disk, or iso-efi as a DVD; never a kernel directly), naming VMs, the
// order of a start, following a VM to its end and removing it. It asks a
// Driver (Packer's model) for every operation on Hyper-V. PowerShellDriver
// renders each operation as a script from text/template (every value a
// single-quoted PowerShell string, quotes doubled: Quote), runs it through
// a Runner (LocalRunner, SSHRunner) and decodes its one-line JSON result; a
// script that fails names the step it was at (ScriptError). The scripts'
// text is pinned by golden files in testdata.
//
// Scripts are sent on PowerShell's standard input, not on its command
// line: PowerShell starts with a fixed -EncodedCommand (Bootstrap) that
// reads one base64 line, the script, and runs it; the rest of standard
// input is the script's (the bytes of an upload, a relay's input). A
// script on the command line would be cut at cmd.exe's 8191 characters
// over SSH, and `-Command -` runs standard input as typed lines with no
// room for data after them.
//
// # A start
//
//  1. The image (vhdx or iso) is uploaded into VM-DIR\NAME on the Windows
//     host through a script's standard input (the cached image is never
//     attached itself: Hyper-V writes to the disks it attaches).
//  2. Relays start for COM1 (console) and COM2 (kitinit's event channel):
//     Hyper-V serves each COM port as a named pipe \\.\pipe\NAME-comN (NAME: the VM)
//     while the VM runs. A relay is a script (Connect-KitrunPipe) that
//     connects a NamedPipeClientStream to the pipe and copies it to its
//     standard output and its standard input to it: over SSH, the session's
//     stdio is the stream. Locally on Windows the pipe is opened directly
//     with go-winio instead. The relays say "waiting" before the VM exists,
//     so the console is followed from the VM's first byte.
//  3. One script creates the VM (New-VM -Generation 2, static memory, CPUs,
//     no checkpoints, Notes 'kitrun'), attaches the disk or DVD, turns
//     Secure Boot off and boots from it first, points COM1 and COM2 at the
//     pipes, connects the network adapter to the switch (networked images
//     only) and starts it. Info.Started is taken just before this script:
//     host times include PowerShell's start and New-VM.
//
// The channel gets its own COM port (Hardware.Channel "/dev/ttyS1") rather
// than sharing the console: kitinit can then take commands (poweroff,
// memory), and `kitrun bench` asks the guest for its memory that way.
//
// The end of a VM is noticed when the console relay ends (the pipe closes
// when the VM stops), confirmed with Get-VM (and polled every 5s besides);
// the VM and its directory are then removed, and only then is Done closed.
// PowerButton types Ctrl+Alt+Del on the VM's synthetic keyboard
// (Msvm_Keyboard TypeCtrlAltDel), which kitinit takes as a graceful
// power-off request (see platform.go for why not the shutdown integration
// service); ForceOff is Stop-VM -TurnOff. Destroy from another process
// marks the VM destroyed in its Notes, turns it off and removes it.
// HostMemory is Get-VM's MemoryAssigned.
//
// Published ports are listeners on this machine; each connection runs a
// relay script on the Windows host (Connect-KitrunGuestPort) that finds the
// guest's IPv4 address (from Hyper-V's KVP data, or the host's neighbour
// table for the adapter's MAC: kitinit runs no KVP daemon) and connects to
// it.
//
// Per-boot files (hypervisor.Spec.Seed: SSH keys) travel on a seed disk
// (seed.go): Hyper-V has no fw_cfg and no metadata service. The seed,
// behind a header with its length and CRC-32C (initproto.SeedDiskImage),
// is written as a dynamic VHDX, uploaded into the VM's directory like the
// boot disk, and attached as a second SCSI disk after the firmware's first
// boot device is set; it goes with the directory. kitinit
// (kitrun.seed=disk) loads the machine's SeedModules and takes the block
// device whose header verifies. A boot without a seed gets an empty seed
// disk, so that kitinit need not wait to conclude there is none.
//
// # Limits
//
//   - The power button is Ctrl+Alt+Del, not Hyper-V's shutdown integration
//     service: Stop-VM without -TurnOff fails on kitrun's guests (they do
//     not load hv_utils, whose shutdown would race kitinit's). A press
//     before kitinit has started (during the kernel's boot) reboots the
//     guest.
//   - A guest kernel panic reboots the VM (panic=-1) and Hyper-V starts it
//     again. hypervisor/vm sees the panic's line on the console and fails
//     the run; the backend has no panic report of its own (hv_vmbus's goes
//     to Hyper-V's event log), so it never sends EvGuestPanic.
//   - A Hyper-V VM does not die with kitrun by itself: kitrun records it in
//     its runtime directory (hypervisor.TrackMachine), and after a kill -9
//     the next kitrun start destroys it; by hand, `Stop-VM -TurnOff` /
//     `Remove-VM` (kitrun-* names).
//   - Nothing here has been run on real Hyper-V yet; check-hyperv.ps1 is
//     the check to run there.
//
// # The test double
//
// Tests run without Windows against hypervisor/hyperv/hypervfake: a fake
// Windows host whose PowerShell is the test binary re-executed. It runs
// the scripts this package generates (the cmdlets of the start script, and
// the prelude's functions implemented natively) and makes each VM a QEMU
// machine (q35, OVMF, the vhdx on virtio-scsi, further disks as read-only
// virtio-blk, COM1 and COM2 as unix
// sockets the relays connect to, user networking). QEMU emulates no VMBus,
// so a backend opened with hardware=qemu declares the machine gen2-qemu
// instead of gen2: the same UEFI disk boot, COM ports and Ctrl+Alt+Del
// power button (QEMU's PS/2 keyboard, QMP send-key), with a virtio NIC
// instead of hv_netvsc (see platform.go). The gen2 module list itself is checked only against the
// kernel's module tree, not booted.
package hyperv
