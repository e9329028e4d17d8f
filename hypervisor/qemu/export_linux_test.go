package qemu

var StartLocked = startLocked
