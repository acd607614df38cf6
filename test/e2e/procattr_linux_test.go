package e2e

import "syscall"

// killWithParent makes the kernel kill a started process when the test
// binary dies (a -timeout panic, a SIGKILL), so nothing is left behind.
func killWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
