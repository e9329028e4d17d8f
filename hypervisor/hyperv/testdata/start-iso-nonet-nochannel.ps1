$step = 'create the VM'
New-VM -Name 'kitrun-web-0a1b2c3d' -Generation 2 -MemoryStartupBytes 536870912 -NoVHD -Path 'C:\it''s here' | Out-Null
$step = 'configure the VM'
Set-VM -Name 'kitrun-web-0a1b2c3d' -Notes 'kitrun' -AutomaticStartAction Nothing -AutomaticStopAction TurnOff -CheckpointType Disabled
$step = 'set the memory'
Set-VMMemory -VMName 'kitrun-web-0a1b2c3d' -DynamicMemoryEnabled $false -StartupBytes 536870912
$step = 'set the processors'
Set-VMProcessor -VMName 'kitrun-web-0a1b2c3d' -Count 1
$step = 'attach the DVD'
Add-VMDvdDrive -VMName 'kitrun-web-0a1b2c3d' -Path 'C:\it''s here\kitrun-web-0a1b2c3d\boot.iso'
$step = 'set the firmware'
Set-VMFirmware -VMName 'kitrun-web-0a1b2c3d' -EnableSecureBoot Off -FirstBootDevice (Get-VMDvdDrive -VMName 'kitrun-web-0a1b2c3d')
$step = 'wire COM1 (console)'
Set-VMComPort -VMName 'kitrun-web-0a1b2c3d' -Number 1 -Path '\\.\pipe\kitrun-web-0a1b2c3d-com1'
$step = 'start the VM'
Start-VM -Name 'kitrun-web-0a1b2c3d'
Write-KitrunVM -Name 'kitrun-web-0a1b2c3d'
