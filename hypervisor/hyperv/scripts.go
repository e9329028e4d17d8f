package hyperv

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"text/template"
	"unicode/utf16"
)

// Quote renders s as a PowerShell single-quoted string: nothing inside is
// expanded, and a quote is written twice. PowerShell also takes the
// typographic single quotes (U+2018, U+2019, U+201A, U+201B) as quotes, so
// they are doubled too.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// bootstrap is the command PowerShell is started with: it reads one line
// of standard input (the script, base64 of UTF-8), then runs the script,
// whose standard input is the rest (a file to receive, a relay's bytes).
// `-Command -` would read the script itself from standard input, line by
// line as if typed (multi-line blocks need care) and with no way to tell
// script from data; and a script on the command line is limited to 8191
// characters by cmd.exe, the default shell of Windows' OpenSSH. Reading
// byte by byte keeps every byte after the newline for the script.
const bootstrap = `$ErrorActionPreference='Stop';$i=[Console]::OpenStandardInput();$b=New-Object IO.MemoryStream;` +
	`while((($c=$i.ReadByte()) -ge 0) -and ($c -ne 10)){$b.WriteByte([byte]$c)};` +
	`$s=[Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Text.Encoding]::ASCII.GetString($b.ToArray())));` +
	`. ([ScriptBlock]::Create($s))`

// EncodedBootstrap is bootstrap as -EncodedCommand takes it: base64 of
// UTF-16LE.
func EncodedBootstrap() string {
	u := utf16.Encode([]rune(bootstrap))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Bootstrap is the text of the bootstrap command (for the test double).
func Bootstrap() string { return bootstrap }

// PwshArgs are the arguments PowerShell runs every script with.
func PwshArgs() []string {
	return []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", EncodedBootstrap()}
}

// ScriptInput is what PowerShell's standard input starts with: the
// script, base64-encoded on one line.
func ScriptInput(script string) []byte {
	return []byte(base64.StdEncoding.EncodeToString([]byte(script)) + "\n")
}

// Prelude markers: the test double skips what is between them and runs
// the functions natively.
const (
	PreludeBegin = "# --- kitrun prelude ---"
	PreludeEnd   = "# --- end of kitrun prelude ---"
)

// prelude starts every script. A terminating error anywhere stops the
// script: the trap writes {"error", "step"} as the script's result and
// exits 1, so that the host names the step that failed. Results are one
// line of JSON on standard output.
const prelude = PreludeBegin + `
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$script:step = 'start'
function Write-KitrunJson($Value) {
    [Console]::Out.WriteLine(($Value | ConvertTo-Json -Compress -Depth 4))
    [Console]::Out.Flush()
}
trap {
    Write-KitrunJson @{ error = "$_"; step = $script:step }
    exit 1
}
function Get-KitrunDirectory([string]$Directory) {
    if ($Directory) { return $Directory }
    return (Join-Path (Get-VMHost).VirtualMachinePath 'kitrun')
}
function Write-KitrunHost {
    $script:step = 'find the Hyper-V module'
    $mod = Get-Module -ListAvailable -Name Hyper-V
    $me = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
    $admin = $me.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator) -or
        $me.IsInRole((New-Object Security.Principal.SecurityIdentifier('S-1-5-32-578')))
    $r = @{ hyperv = [bool]$mod; admin = [bool]$admin; os = [Environment]::OSVersion.VersionString;
        powershell = "$($PSVersionTable.PSVersion)"; version = ''; vmPath = ''; switches = @() }
    if ($mod) {
        $script:step = 'ask the Hyper-V host'
        $h = Get-VMHost
        $vmms = (Get-Item (Join-Path $env:windir 'System32\vmms.exe')).VersionInfo.ProductVersion
        $r.version = "Hyper-V $vmms"
        $r.vmPath = $h.VirtualMachinePath
        $r.switches = @(Get-VMSwitch | ForEach-Object { $_.Name })
    }
    Write-KitrunJson $r
}
function Write-KitrunVM([string]$Name) {
    $script:step = 'get the VM'
    $vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
    if (-not $vm) {
        Write-KitrunJson @{ found = $false; name = $Name }
        return
    }
    Write-KitrunJson @{ found = $true; name = $vm.Name; id = "$($vm.Id)"; state = "$($vm.State)";
        memoryAssigned = [int64]$vm.MemoryAssigned; memoryDemand = [int64]$vm.MemoryDemand;
        memoryStartup = [int64]$vm.MemoryStartup; processorCount = [int]$vm.ProcessorCount;
        uptimeSeconds = [double]$vm.Uptime.TotalSeconds; notes = "$($vm.Notes)" }
}
function Receive-KitrunFile([string]$VMName, [string]$Directory, [string]$File) {
    $script:step = 'make the VM directory'
    $dir = Join-Path (Get-KitrunDirectory $Directory) $VMName
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    $path = Join-Path $dir $File
    $script:step = "receive $File"
    $in = [Console]::OpenStandardInput()
    $out = [IO.File]::Create($path)
    try { $in.CopyTo($out) } finally { $out.Close() }
    Write-KitrunJson @{ path = $path; directory = (Get-KitrunDirectory $Directory); size = (Get-Item -LiteralPath $path).Length }
}
function Copy-KitrunStream($Stream) {
    $stdin = [Console]::OpenStandardInput()
    $stdout = [Console]::OpenStandardOutput()
    $null = $stdin.CopyToAsync($Stream)
    $buf = New-Object byte[] 4096
    while (($n = $Stream.Read($buf, 0, $buf.Length)) -gt 0) {
        $stdout.Write($buf, 0, $n)
        $stdout.Flush()
    }
}
function Connect-KitrunPipe([string]$Name, [int]$TimeoutSeconds) {
    $script:step = "connect to pipe $Name"
    $pipe = New-Object IO.Pipes.NamedPipeClientStream('.', $Name, [IO.Pipes.PipeDirection]::InOut, [IO.Pipes.PipeOptions]::Asynchronous)
    [Console]::Error.WriteLine('kitrun-relay: waiting')
    [Console]::Error.Flush()
    $pipe.Connect($TimeoutSeconds * 1000)
    [Console]::Error.WriteLine('kitrun-relay: connected')
    Copy-KitrunStream $pipe
}
function Connect-KitrunGuestPort([string]$VMName, [int]$Port, [int]$TimeoutSeconds) {
    $script:step = 'find the guest address'
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    $ip = $null
    while (-not $ip) {
        $nic = Get-VMNetworkAdapter -VMName $VMName | Select-Object -First 1
        $ip = $nic.IPAddresses | Where-Object { $_ -match '^\d+\.\d+\.\d+\.\d+$' } | Select-Object -First 1
        if (-not $ip) {
            $mac = $nic.MacAddress -replace '(..)(?!$)', '$1-'
            $ip = Get-NetNeighbor -LinkLayerAddress $mac -AddressFamily IPv4 -ErrorAction SilentlyContinue |
                Where-Object { $_.State -ne 'Unreachable' } | Select-Object -First 1 -ExpandProperty IPAddress
        }
        if (-not $ip) {
            if ((Get-Date) -gt $deadline) { throw "no IPv4 address known for $VMName (no KVP daemon in the guest, no ARP entry on this host)" }
            Start-Sleep -Milliseconds 500
        }
    }
    $script:step = "connect to ${ip}:$Port"
    $tcp = New-Object Net.Sockets.TcpClient
    $tcp.Connect($ip, $Port)
    [Console]::Error.WriteLine('kitrun-relay: connected')
    Copy-KitrunStream $tcp.GetStream()
}
function Send-KitrunCtrlAltDel([string]$Name) {
    $script:step = 'get the VM'
    $vm = Get-VM -Name $Name
    $script:step = "find the VM's keyboard"
    $kb = Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName Msvm_Keyboard -Filter "SystemName='$($vm.Id)'"
    if (-not $kb) {
        Write-KitrunJson @{ sent = $false; reason = 'the VM has no keyboard now (it is not running)' }
        return
    }
    $script:step = 'type Ctrl+Alt+Del'
    $r = $kb | Invoke-CimMethod -MethodName TypeCtrlAltDel
    Write-KitrunJson @{ sent = ($r.ReturnValue -eq 0); reason = "TypeCtrlAltDel returned $($r.ReturnValue)" }
}
function Remove-KitrunVM([string]$Name, [string]$Directory, [bool]$Destroyed) {
    $script:step = 'get the VM'
    $vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
    if ($vm) {
        if ($Destroyed) {
            $script:step = 'mark the VM destroyed'
            Set-VM -VM $vm -Notes 'kitrun: destroyed'
        }
        if ($vm.State -ne 'Off') {
            $script:step = 'turn the VM off'
            Stop-VM -VM $vm -TurnOff -Force -Confirm:$false
        }
        $script:step = 'remove the VM'
        Remove-VM -VM $vm -Force
    }
    $script:step = 'remove the VM directory'
    $dir = Join-Path (Get-KitrunDirectory $Directory) $Name
    if (Test-Path -LiteralPath $dir) { Remove-Item -LiteralPath $dir -Recurse -Force }
    Write-KitrunJson @{ removed = [bool]$vm }
}
` + PreludeEnd + "\n"

// Script templates. Every value is rendered with q (Quote) or is a number.
var scripts = template.Must(template.New("").Funcs(template.FuncMap{"q": Quote}).Parse(`
{{define "host"}}Write-KitrunHost
{{end}}

{{define "status"}}Write-KitrunVM -Name {{q .Name}}
{{end}}

{{define "receive"}}Receive-KitrunFile -VMName {{q .Name}} -Directory {{q .Directory}} -File {{q .File}}
{{end}}

{{define "relay"}}Connect-KitrunPipe -Name {{q .Pipe}} -TimeoutSeconds {{.Timeout}}
{{end}}

{{define "guest-port"}}Connect-KitrunGuestPort -VMName {{q .Name}} -Port {{.Port}} -TimeoutSeconds {{.Timeout}}
{{end}}

{{define "power-button"}}Send-KitrunCtrlAltDel -Name {{q .Name}}
{{end}}

{{define "turn-off"}}$step = 'turn the VM off'
Stop-VM -Name {{q .Name}} -TurnOff -Force -Confirm:$false
Write-KitrunVM -Name {{q .Name}}
{{end}}

{{define "remove"}}Remove-KitrunVM -Name {{q .Name}} -Directory {{q .Directory}} -Destroyed {{if .Destroyed}}$true{{else}}$false{{end}}
{{end}}

{{define "start"}}$step = 'create the VM'
New-VM -Name {{q .Name}} -Generation 2 -MemoryStartupBytes {{.MemoryBytes}} -NoVHD -Path {{q .VMPath}} | Out-Null
$step = 'configure the VM'
Set-VM -Name {{q .Name}} -Notes 'kitrun' -AutomaticStartAction Nothing -AutomaticStopAction TurnOff -CheckpointType Disabled
$step = 'set the memory'
Set-VMMemory -VMName {{q .Name}} -DynamicMemoryEnabled $false -StartupBytes {{.MemoryBytes}}
$step = 'set the processors'
Set-VMProcessor -VMName {{q .Name}} -Count {{.CPUs}}
{{if .DVD}}$step = 'attach the DVD'
Add-VMDvdDrive -VMName {{q .Name}} -Path {{q .Disk}}
$step = 'set the firmware'
Set-VMFirmware -VMName {{q .Name}} -EnableSecureBoot Off -FirstBootDevice (Get-VMDvdDrive -VMName {{q .Name}})
{{else}}$step = 'attach the disk'
Add-VMHardDiskDrive -VMName {{q .Name}} -Path {{q .Disk}}
$step = 'set the firmware'
Set-VMFirmware -VMName {{q .Name}} -EnableSecureBoot Off -FirstBootDevice (Get-VMHardDiskDrive -VMName {{q .Name}})
{{end}}{{if .Seed}}$step = 'attach the seed disk'
Add-VMHardDiskDrive -VMName {{q .Name}} -ControllerType SCSI -ControllerNumber 0 -Path {{q .Seed}}
{{end}}$step = 'wire COM1 (console)'
Set-VMComPort -VMName {{q .Name}} -Number 1 -Path {{q .Console}}
{{if .Channel}}$step = 'wire COM2 (event channel)'
Set-VMComPort -VMName {{q .Name}} -Number 2 -Path {{q .Channel}}
{{end}}{{if .Switch}}$step = 'connect the network adapter'
Connect-VMNetworkAdapter -VMName {{q .Name}} -SwitchName {{q .Switch}}
{{end}}$step = 'start the VM'
Start-VM -Name {{q .Name}}
Write-KitrunVM -Name {{q .Name}}
{{end}}
`))

// render makes a complete script: the prelude, then the named template.
func render(name string, data any) (string, error) {
	var b bytes.Buffer
	b.WriteString(prelude)
	if err := scripts.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("hyperv: rendering the %s script: %w", name, err)
	}
	return b.String(), nil
}

// startData is what the start script is rendered from.
type startData struct {
	Name        string
	VMPath      string // where New-VM keeps the VM's configuration
	MemoryBytes int64
	CPUs        int
	Disk        string // the image on the Windows host
	DVD         bool   // attach Disk as a DVD (iso-efi)
	// Seed is this boot's seed disk on the Windows host ("" for none),
	// attached after the firmware's first boot device is set: that takes
	// one drive, and Get-VMHardDiskDrive would then return two.
	Seed    string
	Console string // COM1's pipe path
	Channel string // COM2's pipe path; "" when the channel is off
	Switch  string // "" leaves the network adapter unconnected
}

type nameData struct{ Name string }

type receiveData struct{ Name, Directory, File string }

type relayData struct {
	Pipe    string
	Timeout int
}

type guestPortData struct {
	Name    string
	Port    int
	Timeout int
}

type removeData struct {
	Name, Directory string
	Destroyed       bool
}

// PipeName is the name of COM port n's pipe of VM name (the path is
// \\.\pipe\NAME).
func PipeName(vm string, n int) string { return fmt.Sprintf("%s-com%d", vm, n) }

// PipePath is a pipe's path.
func PipePath(name string) string { return `\\.\pipe\` + name }
