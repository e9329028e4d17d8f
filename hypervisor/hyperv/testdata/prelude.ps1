# --- kitrun prelude ---
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
# --- end of kitrun prelude ---
