Connect-KitrunGuestPort -VMName 'kitrun-web-0a1b2c3d' -Port 8080 -TimeoutSeconds 30
