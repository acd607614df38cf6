package localcluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    []int // api, etcd client, etcd peer, controller-manager, scheduler
		nodes   int
		wantErr string
	}{
		{name: "all default", cfg: Config{DataDir: "d"}, want: []int{6443, 6444, 6445, 6446, 6447}, nodes: 1},
		{name: "derived from the api server port", cfg: Config{DataDir: "d", APIServerPort: 7443, Nodes: 3},
			want: []int{7443, 7444, 7445, 7446, 7447}, nodes: 3},
		{name: "explicit ports kept", cfg: Config{DataDir: "d", APIServerPort: 100, EtcdClientPort: 200,
			EtcdPeerPort: 300, ControllerManagerPort: 400, SchedulerPort: 500},
			want: []int{100, 200, 300, 400, 500}, nodes: 1},
		{name: "data dir required", cfg: Config{}, wantErr: "DataDir is required"},
		{name: "duplicate port", cfg: Config{DataDir: "d", APIServerPort: 7443, SchedulerPort: 7443},
			wantErr: "kube-apiserver and kube-scheduler both on port 7443"},
		{name: "port out of range", cfg: Config{DataDir: "d", APIServerPort: 65535}, wantErr: "etcd client port 65536 out of range"},
		{name: "negative nodes", cfg: Config{DataDir: "d", Nodes: -1}, wantErr: "Nodes must be positive"},
		{name: "extra args of an unknown component", cfg: Config{DataDir: "d", ExtraArgs: map[string][]string{"apiserver": {"--v=2"}}},
			wantErr: `ExtraArgs for "apiserver": no such component`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ports []int
			for _, p := range got.ports() {
				ports = append(ports, p.port)
			}
			if !equalInts(ports, tt.want) {
				t.Errorf("ports %v, want %v", ports, tt.want)
			}
			if got.Nodes != tt.nodes {
				t.Errorf("nodes %d, want %d", got.Nodes, tt.nodes)
			}
			if !filepath.IsAbs(got.DataDir) || !filepath.IsAbs(got.BinDir) {
				t.Errorf("dirs not absolute: %q, %q", got.DataDir, got.BinDir)
			}
			if got.Logger == nil || got.StartTimeout <= 0 || got.StopGracePeriod <= 0 {
				t.Errorf("defaults missing: %+v", got)
			}
		})
	}
}

func TestDefaultBinDir(t *testing.T) {
	t.Setenv("OPGATE_TOOLS_DIR", "/opt/tools")
	if got := DefaultBinDir(); got != "/opt/tools/bin" {
		t.Errorf("with OPGATE_TOOLS_DIR: %q", got)
	}
	t.Setenv("OPGATE_TOOLS_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/cache")
	if got := DefaultBinDir(); got != "/cache/opgate/k8s-v1.32.4/bin" {
		t.Errorf("with XDG_CACHE_HOME: %q", got)
	}
}

func TestCheckBinariesNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "etcd", "exit 0")
	err := CheckBinaries(dir)
	if !errors.Is(err, ErrMissingBinaries) {
		t.Fatalf("error %v, want ErrMissingBinaries", err)
	}
	for _, want := range []string{"make tools", "kube-apiserver, kube-controller-manager, kube-scheduler, kwok"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "etcd,") {
		t.Errorf("error %q names etcd, which is there", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// writeScript writes an executable shell script dir/name.
func writeScript(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}
