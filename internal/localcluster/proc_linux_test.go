package localcluster

import (
	"os"
	"path/filepath"
	"testing"
)

// A PID file names a process of ours only if that process runs the binary:
// by its first argument, or, while it has none yet (in the middle of exec,
// right after its start returned), by its executable; a kernel thread,
// which has neither, never.
func TestRunsBinaryTellsOurProcessesFromOthers(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !runsBinary(os.Getpid(), filepath.Base(self)) {
		t.Errorf("this test process is not taken for %s", filepath.Base(self))
	}
	if runsBinary(os.Getpid(), "etcd") {
		t.Error("this test process is taken for etcd")
	}
	if runsBinary(2, "kthreadd") { // the kernel's thread parent: no arguments, no executable
		t.Error("a kernel thread is taken for a binary")
	}
}
