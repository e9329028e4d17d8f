$step = 'create the VM'
New-VM -Name 'kitrun-web-0a1b2c3d' -Generation 2 -MemoryStartupBytes 268435456 -NoVHD -Path 'C:\ProgramData\Microsoft\Windows\Hyper-V\kitrun' | Out-Null
$step = 'configure the VM'
Set-VM -Name 'kitrun-web-0a1b2c3d' -Notes 'kitrun' -AutomaticStartAction Nothing -AutomaticStopAction TurnOff -CheckpointType Disabled
$step = 'set the memory'
Set-VMMemory -VMName 'kitrun-web-0a1b2c3d' -DynamicMemoryEnabled $false -StartupBytes 268435456
$step = 'set the processors'
Set-VMProcessor -VMName 'kitrun-web-0a1b2c3d' -Count 2
$step = 'attach the disk'
Add-VMHardDiskDrive -VMName 'kitrun-web-0a1b2c3d' -Path 'C:\ProgramData\Microsoft\Windows\Hyper-V\kitrun\kitrun-web-0a1b2c3d\disk.vhdx'
$step = 'set the firmware'
Set-VMFirmware -VMName 'kitrun-web-0a1b2c3d' -EnableSecureBoot Off -FirstBootDevice (Get-VMHardDiskDrive -VMName 'kitrun-web-0a1b2c3d')
$step = 'attach the seed disk'
Add-VMHardDiskDrive -VMName 'kitrun-web-0a1b2c3d' -ControllerType SCSI -ControllerNumber 0 -Path 'C:\ProgramData\Microsoft\Windows\Hyper-V\kitrun\kitrun-web-0a1b2c3d\seed.vhdx'
$step = 'wire COM1 (console)'
Set-VMComPort -VMName 'kitrun-web-0a1b2c3d' -Number 1 -Path '\\.\pipe\kitrun-web-0a1b2c3d-com1'
$step = 'wire COM2 (event channel)'
Set-VMComPort -VMName 'kitrun-web-0a1b2c3d' -Number 2 -Path '\\.\pipe\kitrun-web-0a1b2c3d-com2'
$step = 'connect the network adapter'
Connect-VMNetworkAdapter -VMName 'kitrun-web-0a1b2c3d' -SwitchName 'Default Switch'
$step = 'start the VM'
Start-VM -Name 'kitrun-web-0a1b2c3d'
Write-KitrunVM -Name 'kitrun-web-0a1b2c3d'
