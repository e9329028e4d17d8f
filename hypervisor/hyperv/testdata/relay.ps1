Connect-KitrunPipe -Name 'kitrun-web-0a1b2c3d-com1' -TimeoutSeconds 120
