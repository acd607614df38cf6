package localcluster

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestStopAndStartOneComponent runs a stand-in etcd (a shell script) as a
// component, kills it and starts it again with the same command line.
func TestStopAndStartOneComponent(t *testing.T) {
	dataDir := t.TempDir()
	cfg, err := Config{
		BinDir: fakeBinDir(t, "echo \"etcd args: $*\"; exec sleep 1000"), DataDir: dataDir,
		StopGracePeriod: time.Second, ExtraArgs: map[string][]string{"etcd": {"--extra=1"}},
	}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{cfg: cfg}
	defer c.Stop()
	ready := func(context.Context) (bool, string, error) { return true, "", nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.startAndWait(ctx, "etcd", []string{"--name=x"}, "etcd", ready); err != nil {
		t.Fatal(err)
	}
	first := c.process("etcd")

	if err := c.StartComponent(ctx, "etcd"); err == nil || !strings.Contains(err.Error(), "etcd is running") {
		t.Errorf("StartComponent of a running component: %v", err)
	}
	if err := c.StopComponent("kube-apiserver", true); err == nil || !strings.Contains(err.Error(), `no component "kube-apiserver"`) {
		t.Errorf("StopComponent of a component never started: %v", err)
	}
	if err := c.StopComponent("etcd", true); err != nil {
		t.Fatal(err)
	}
	if !first.exited() {
		t.Fatal("etcd still runs after StopComponent")
	}
	if _, err := os.Stat(pidPath(dataDir, "etcd")); !os.IsNotExist(err) {
		t.Errorf("pid file of the stopped etcd: %v, want it removed", err)
	}
	if err := c.StopComponent("etcd", false); err == nil || !strings.Contains(err.Error(), "already stopped") {
		t.Errorf("StopComponent twice: %v", err)
	}
	if err := c.StartComponent(ctx, "etcd"); err != nil {
		t.Fatal(err)
	}
	second := c.process("etcd")
	if second.pid == first.pid || second.exited() {
		t.Fatalf("etcd not started again: pid %d (was %d), exited %v", second.pid, first.pid, second.exited())
	}
	log, err := os.ReadFile(logPath(dataDir, "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "--name=x --extra=1") {
		t.Errorf("restarted etcd's command line lacks the original and extra args:\n%s", log)
	}
}
