<#
.SYNOPSIS
Checks that this Windows host can run kitrun's Hyper-V backend, then boots
examples/minimal.yml on it.

.DESCRIPTION
Run it on the Windows host, in an elevated PowerShell or as a member of
Hyper-V Administrators, from a kitrun checkout:

    powershell -ExecutionPolicy Bypass -File hypervisor\hyperv\check-hyperv.ps1

It checks, in order, and says what to do about each failure:
  1. Hyper-V is enabled and its hypervisor and management service run;
  2. the account may manage VMs;
  3. the virtual switch exists (-Switch; default "Default Switch");
  4. a generation 2 VM can be created the way kitrun creates it (Secure
     Boot off, static memory, COM1 and COM2 on named pipes, no
     checkpoints) and removed again, with a boot disk as the firmware's
     first boot device and then a second SCSI disk (where kitrun puts a
     boot's seed: SSH keys) attached after it;
  5. Windows' OpenSSH server, for kitrun on another machine (a note only);
then runs

    kitrun run examples/minimal.yml --backend hyperv --format vhdx --until-ready

through -Kitrun (default: kitrun in the default WSL distribution, which
runs this host's powershell.exe: --backend-opt pwsh=powershell.exe), and
checks that no kitrun VM is left behind; then runs the SSH test case

    kitrun test testcases --run ssh/exec --backend hyperv --format vhdx

whose keys reach the guest on the seed disk (kitinit loads hv_storvsc and
sd_mod and finds it among the SCSI disks), and checks again that no VM is
left.

kitrun's command line does not build for Windows yet: run it in WSL on this
host, or on a Linux machine with --backend-opt host=USER@THIS-HOST (see the
README's "Hyper-V" section).

.PARAMETER Kitrun
The command that runs kitrun, e.g. 'wsl -d Debian -- ~/go/bin/kitrun'.

.PARAMETER BackendOpts
--backend-opt values for the run (default: pwsh=powershell.exe).

.PARAMETER Spec
The spec to boot, relative to the checkout (default examples/minimal.yml).

.PARAMETER Switch
The virtual switch for networked images.

.PARAMETER SkipRun
Check the prerequisites only.

.PARAMETER SkipSSH
Skip the SSH test case (the seed disk).
#>
param(
    [string]$Kitrun = 'wsl -- kitrun',
    [string[]]$BackendOpts = @('pwsh=powershell.exe'),
    [string]$Spec = 'examples/minimal.yml',
    [string]$Switch = 'Default Switch',
    [switch]$SkipRun,
    [switch]$SkipSSH
)

$ErrorActionPreference = 'Stop'
$failed = 0

function Pass([string]$What) { Write-Host "ok    $What" -ForegroundColor Green }
function Fail([string]$What, [string]$Fix) {
    Write-Host "FAIL  $What" -ForegroundColor Red
    if ($Fix) { Write-Host "      $Fix" }
    $script:failed++
}
function Note([string]$What) { Write-Host "note  $What" -ForegroundColor Yellow }

# 1. Hyper-V
$os = Get-CimInstance Win32_OperatingSystem
Write-Host "$($os.Caption) $($os.Version), PowerShell $($PSVersionTable.PSVersion)"
if (-not (Get-Module -ListAvailable -Name Hyper-V)) {
    Fail 'the Hyper-V PowerShell module is installed' 'Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V-All (Windows 10/11 Pro, Enterprise, Education or Server), then reboot'
} else {
    Pass 'the Hyper-V PowerShell module is installed'
}
if (-not (Get-CimInstance Win32_ComputerSystem).HypervisorPresent) {
    Fail 'the hypervisor runs' 'enable virtualization in the firmware, and Hyper-V; then reboot'
} else {
    Pass 'the hypervisor runs'
}
$vmms = Get-Service -Name vmms -ErrorAction SilentlyContinue
if (-not $vmms -or $vmms.Status -ne 'Running') {
    Fail 'the Hyper-V Virtual Machine Management service (vmms) runs' 'Start-Service vmms'
} else {
    Pass 'the Hyper-V Virtual Machine Management service (vmms) runs'
}

# 2. Rights
$me = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
$admin = $me.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
$hvAdmin = $me.IsInRole((New-Object Security.Principal.SecurityIdentifier('S-1-5-32-578')))
if (-not ($admin -or $hvAdmin)) {
    Fail 'this account may manage VMs' "Add-LocalGroupMember -Group 'Hyper-V Administrators' -Member $env:USERNAME (then log in again), or run elevated"
} else {
    Pass "this account may manage VMs (administrator: $admin, Hyper-V Administrators: $hvAdmin)"
}

if ($failed -gt 0) {
    Write-Host "$failed check(s) failed; fix them and run this again."
    exit 1
}

# 3. The switch
$switches = @(Get-VMSwitch | ForEach-Object { $_.Name })
if ($switches -notcontains $Switch) {
    Fail "virtual switch '$Switch' exists (switches: $($switches -join ', '))" "New-VMSwitch -Name '$Switch' -SwitchType Internal (plus New-NetNat and a DHCP server), or pass -Switch NAME and --backend-opt switch=NAME"
} else {
    Pass "virtual switch '$Switch' exists (networked images are connected to it and lease an address by DHCP)"
}

# 4. A VM as kitrun makes it, never started
$name = 'kitrun-check-' + ([guid]::NewGuid().ToString('N').Substring(0, 8))
$dir = Join-Path $env:TEMP $name
try {
    New-VM -Name $name -Generation 2 -MemoryStartupBytes 268435456 -NoVHD -Path $dir | Out-Null
    Set-VM -Name $name -Notes 'kitrun' -AutomaticStartAction Nothing -AutomaticStopAction TurnOff -CheckpointType Disabled
    Set-VMMemory -VMName $name -DynamicMemoryEnabled $false -StartupBytes 268435456
    Set-VMProcessor -VMName $name -Count 1
    Set-VMFirmware -VMName $name -EnableSecureBoot Off
    Set-VMComPort -VMName $name -Number 1 -Path "\\.\pipe\$name-com1"
    Set-VMComPort -VMName $name -Number 2 -Path "\\.\pipe\$name-com2"
    # Disks as kitrun attaches them: the boot disk, the firmware's first
    # boot device set to it (-FirstBootDevice takes one drive), then the
    # seed disk on the same SCSI controller.
    New-VHD -Path (Join-Path $dir 'disk.vhdx') -SizeBytes 8MB -Dynamic | Out-Null
    New-VHD -Path (Join-Path $dir 'seed.vhdx') -SizeBytes 4MB -Dynamic | Out-Null
    Add-VMHardDiskDrive -VMName $name -Path (Join-Path $dir 'disk.vhdx')
    Set-VMFirmware -VMName $name -EnableSecureBoot Off -FirstBootDevice (Get-VMHardDiskDrive -VMName $name)
    Add-VMHardDiskDrive -VMName $name -ControllerType SCSI -ControllerNumber 0 -Path (Join-Path $dir 'seed.vhdx')
    $disks = @(Get-VMHardDiskDrive -VMName $name)
    if ($disks.Count -ne 2) { throw "hard disks after attaching the seed disk: $($disks | Out-String)" }
    $first = (Get-VMFirmware -VMName $name).BootOrder | Select-Object -First 1
    if ($first.Device.Path -ne (Join-Path $dir 'disk.vhdx')) { throw "the first boot device is $($first.Device.Path), not the boot disk" }
    $ports = @(Get-VMComPort -VMName $name | Where-Object { $_.Path -like "*$name-com*" })
    if ($ports.Count -ne 2) { throw "COM ports: $($ports | Out-String)" }
    $sd = Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName Msvm_ComputerSystem -Filter "ElementName='$name'"
    if (-not $sd) { throw 'the VM is not visible through CIM (root\virtualization\v2), which the power button uses' }
    if (-not (Get-CimClass -Namespace 'root\virtualization\v2' -ClassName Msvm_Keyboard -ErrorAction SilentlyContinue).CimClassMethods['TypeCtrlAltDel']) {
        throw 'Msvm_Keyboard has no TypeCtrlAltDel method here; kitrun types Ctrl+Alt+Del with it (its power button)'
    }
    Pass 'a generation 2 VM with Secure Boot off, COM1/COM2 on named pipes, a boot disk and a seed disk can be made'
} catch {
    Fail 'a generation 2 VM with Secure Boot off, COM1/COM2 on named pipes, a boot disk and a seed disk can be made' "$_"
} finally {
    if (Get-VM -Name $name -ErrorAction SilentlyContinue) { Remove-VM -Name $name -Force }
    if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Recurse -Force }
}

# 5. OpenSSH, for kitrun elsewhere
$sshd = Get-Service -Name sshd -ErrorAction SilentlyContinue
if ($sshd -and $sshd.Status -eq 'Running') {
    Note 'OpenSSH server runs: kitrun on another machine can use --backend-opt host=USER@HOST known-hosts=FILE key=FILE'
} else {
    Note 'no OpenSSH server: kitrun must run here (WSL). For kitrun elsewhere: Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0; Start-Service sshd'
}

if ($failed -gt 0) {
    Write-Host "$failed check(s) failed."
    exit 1
}
if ($SkipRun) { exit 0 }

# The run
# ($args is PowerShell's own variable: not used.)
# Invoke-Kitrun runs $Kitrun (a command, possibly with its own arguments)
# with KitrunArgs and the backend options, and returns its exit status and
# how many seconds it took.
function Invoke-Kitrun([string[]]$KitrunArgs) {
    $cmd = @($Kitrun -split ' ' | Where-Object { $_ })
    $all = @()
    if ($cmd.Count -gt 1) { $all += $cmd[1..($cmd.Count - 1)] }
    $all += $KitrunArgs
    foreach ($o in $BackendOpts) { $all += @('--backend-opt', $o) }
    Write-Host "running: $($cmd[0]) $($all -join ' ')"
    $started = Get-Date
    & $cmd[0] @all | Out-Host
    return @($LASTEXITCODE, ((Get-Date) - $started).TotalSeconds)
}
$status, $took = Invoke-Kitrun @('run', $Spec, '--backend', 'hyperv', '--format', 'vhdx', '--until-ready')
if ($status -ne 0) {
    Fail "kitrun run --backend hyperv (exit status $status after $([int]$took)s)" 'see its output above: it names the step of the script that failed, or the boot stage reached and the console'
} else {
    Pass "kitrun run --backend hyperv: ready and powered off cleanly in $([int]$took)s"
}
function Test-NoneLeft {
    $left = @(Get-VM -Name 'kitrun-*' -ErrorAction SilentlyContinue)
    if ($left.Count -gt 0) {
        Fail "no kitrun VM is left: $(($left | ForEach-Object { "$($_.Name) ($($_.State))" }) -join ', ')" "Stop-VM -Name NAME -TurnOff -Force; Remove-VM -Name NAME -Force"
    } else {
        Pass 'no kitrun VM is left'
    }
}
Test-NoneLeft

# The SSH case: per-boot keys on the seed disk, the host key pinned.
if (-not $SkipSSH) {
    $status, $took = Invoke-Kitrun @('test', 'testcases', '--run', 'ssh/exec', '--backend', 'hyperv', '--format', 'vhdx')
    if ($status -ne 0) {
        Fail "kitrun test --run ssh/exec --backend hyperv (exit status $status after $([int]$took)s)" 'see its output: a boot that stops at service-started sshd with "host key: no such file" means kitinit found no seed disk (is hv_storvsc loaded? lsblk in the guest)'
    } else {
        Pass "kitrun test --run ssh/exec --backend hyperv: the seed disk delivered the keys (${took}s)"
    }
    Test-NoneLeft
}
if ($failed -gt 0) { exit 1 }
Write-Host 'Hyper-V works with kitrun.'
