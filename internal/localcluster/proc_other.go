//go:build !linux

package localcluster

import "syscall"

// KillWithParent needs Linux's Pdeathsig; elsewhere it has no effect.
func sysProcAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

// Without /proc, trust the PID file.
func runsBinary(int, string) bool { return true }

func isZombie(int) bool { return false }
