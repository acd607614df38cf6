package localcluster

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeBinDir holds a shell script for every component; etcd's body is
// given, the others must never be reached.
func fakeBinDir(t *testing.T, etcdBody string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range requiredBinaries {
		writeScript(t, dir, name, "echo unexpected start of "+name+"; exit 1")
	}
	writeScript(t, dir, "etcd", etcdBody)
	return dir
}

func TestStartFailsAndCleansUp(t *testing.T) {
	tests := []struct {
		name     string
		etcdBody string
		timeout  time.Duration
		wantErr  []string
	}{
		{
			name:     "component exits",
			etcdBody: "echo 'etcd: boom: cannot open data dir'; exit 3",
			timeout:  time.Minute,
			wantErr:  []string{"etcd exited: exit status 3", "logs/etcd.log", "etcd: boom: cannot open data dir"},
		},
		{
			name:     "component never gets healthy",
			etcdBody: "echo 'etcd: hanging'; exec sleep 1000",
			timeout:  time.Second,
			wantErr:  []string{"deadline exceeded", "waiting for etcd /health", "logs/etcd.log", "etcd: hanging"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			// Every port free, not only the API server's: the ports derived
			// from it (+1 to +4) may be another test's at the moment.
			ports, err := FreePorts(5)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Start(context.Background(), Config{
				BinDir: fakeBinDir(t, tt.etcdBody), DataDir: dataDir,
				APIServerPort: ports[0], EtcdClientPort: ports[1], EtcdPeerPort: ports[2],
				ControllerManagerPort: ports[3], SchedulerPort: ports[4],
				StartTimeout: tt.timeout, StopGracePeriod: time.Second,
			})
			if err == nil {
				t.Fatal("Start succeeded with a broken etcd")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q:\n%v", want, err)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(pidDir(dataDir), "*.pid")); len(left) > 0 {
				t.Errorf("PID files left behind: %v", left)
			}
		})
	}
}

func TestStartRefusesBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Config{
		BinDir: fakeBinDir(t, "exit 1"), DataDir: t.TempDir(),
		APIServerPort: freePort(t), EtcdClientPort: busy, EtcdPeerPort: freePort(t),
		ControllerManagerPort: freePort(t), SchedulerPort: freePort(t),
	})
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(busy)+" for etcd client is not free") {
		t.Fatalf("error %v, want one naming the busy etcd client port %d", err, busy)
	}
}

func TestDownStopsRecordedProcessesOnce(t *testing.T) {
	binDir := t.TempDir()
	copyFile(t, "/bin/sleep", filepath.Join(binDir, "etcd")) // argv[0] is .../etcd, as Down expects
	dataDir := t.TempDir()
	cfg, err := Config{BinDir: binDir, DataDir: dataDir}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(cfg, "etcd", []string{"1000"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.proc.Kill() })

	stopped, err := Down(dataDir, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 1 || !strings.HasPrefix(stopped[0], "etcd (pid ") {
		t.Errorf("stopped %v, want etcd", stopped)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("etcd still running after Down")
	}
	if _, err := os.Stat(pidPath(dataDir, "etcd")); !os.IsNotExist(err) {
		t.Errorf("PID file still there: %v", err)
	}
	stopped, err = Down(dataDir, 5*time.Second)
	if err != nil || len(stopped) != 0 {
		t.Errorf("second Down: stopped %v, err %v; want nothing", stopped, err)
	}
}

func TestRecordedProcessIgnoresAReusedPID(t *testing.T) {
	dataDir := t.TempDir()
	if err := os.MkdirAll(pidDir(dataDir), 0o755); err != nil {
		t.Fatal(err)
	}
	// This test binary is alive but is not etcd: its PID must not be signalled.
	path := pidPath(dataDir, "etcd")
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	procs, err := recordedProcesses(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 0 {
		t.Errorf("recorded processes %v, want none", describe(procs))
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("stale PID file kept: %v", err)
	}
}

func TestTailLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var lines []string
	for i := range 100 {
		lines = append(lines, "line "+strconv.Itoa(i))
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := tailLines(path, 3), "line 97\nline 98\nline 99"; got != want {
		t.Errorf("tail %q, want %q", got, want)
	}
	if got := tailLines(filepath.Join(t.TempDir(), "missing"), 3); !strings.Contains(got, "no such file") {
		t.Errorf("tail of a missing file %q", got)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
