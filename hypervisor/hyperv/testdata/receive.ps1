Receive-KitrunFile -VMName 'kitrun-web-0a1b2c3d' -Directory 'D:\VMs\kitrun''s' -File 'disk.vhdx'
