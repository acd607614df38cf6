//go:build !linux

package e2e

import "syscall"

// killWithParent needs Linux's Pdeathsig; elsewhere the test's cleanup
// alone stops the processes it started.
func killWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
