package localcluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func sysProcAttr(killWithParent bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setsid: true}
	if killWithParent {
		attr.Pdeathsig = syscall.SIGKILL
	}
	return attr
}

// runsBinary reports whether pid's argv[0] is a binary called name, so a
// PID file never makes us signal an unrelated process that reused the PID.
func runsBinary(pid int, name string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	if len(argv0) > 0 {
		return filepath.Base(string(argv0)) == name
	}
	// No arguments yet: a process in the middle of exec. The kernel closes
	// the descriptor its parent waits on (so cmd.Start returns) before it
	// sets up the new arguments, so a PID file read right after a start
	// can see it so; its executable is already the new one. (A kernel
	// thread has no arguments and no executable.)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(exe) == name
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z'
	}
	return false
}
