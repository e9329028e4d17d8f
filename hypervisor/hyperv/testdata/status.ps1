Write-KitrunVM -Name 'kitrun-web-0a1b2c3d'
