Write-KitrunHost
