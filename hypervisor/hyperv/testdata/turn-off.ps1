$step = 'turn the VM off'
Stop-VM -Name 'kitrun-web-0a1b2c3d' -TurnOff -Force -Confirm:$false
Write-KitrunVM -Name 'kitrun-web-0a1b2c3d'
