//go:build !unix

package runtimedir

import "syscall"

func newGroup() *syscall.SysProcAttr { return nil }

func killTestGroup(int) {}
