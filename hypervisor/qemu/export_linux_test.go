package qemu

import "github.com/kitrun/kitrun/internal/childproc"

var StartLocked = childproc.StartLocked
