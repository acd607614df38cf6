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

func TestControllersReachTheControllerManager(t *testing.T) {
	tests := []struct {
		name           string
		controllers    []string
		wantFlag       string
		serviceAccount bool
		wantErr        string
	}{
		{name: "default runs every controller", wantFlag: "--controllers=*", serviceAccount: true},
		{name: "garbage collector only", controllers: []string{"garbagecollector"},
			wantFlag: "--controllers=garbagecollector"},
		{name: "all but the service accounts", controllers: []string{"*", "-serviceaccount"},
			wantFlag: "--controllers=*,-serviceaccount"},
		{name: "service accounts named", controllers: []string{"garbagecollector", "serviceaccount"},
			wantFlag: "--controllers=garbagecollector,serviceaccount", serviceAccount: true},
		{name: "a list in one entry is refused", controllers: []string{"a,b"}, wantErr: `controller name "a,b"`},
		{name: "an empty entry is refused", controllers: []string{""}, wantErr: `controller name ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Config{DataDir: "d", Controllers: tt.controllers}.withDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			args := controllerManagerArgs(cfg, &pki{})
			n := 0
			for _, a := range args {
				if strings.HasPrefix(a, "--controllers=") {
					n++
					if a != tt.wantFlag {
						t.Errorf("flag %q, want %q", a, tt.wantFlag)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d --controllers flags in %v, want 1", n, args)
			}
			if got := cfg.runsServiceAccountController(); got != tt.serviceAccount {
				t.Errorf("runs the service account controller: %v, want %v", got, tt.serviceAccount)
			}
		})
	}
}

func TestAPIServerFlagsComeLast(t *testing.T) {
	cfg, err := Config{DataDir: "d", APIServerFlags: []string{"--profiling=true"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	args := apiServerArgs(cfg, &pki{})
	if got := args[len(args)-1]; got != "--profiling=true" {
		t.Errorf("last flag %q, want the extra flag, after the default --profiling=false", got)
	}
}

func TestControllerManagerFlagsComeLast(t *testing.T) {
	cfg, err := Config{DataDir: "d", ControllerManagerFlags: []string{"--kube-api-qps=500", "--kube-api-burst=1000"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	args := controllerManagerArgs(cfg, &pki{})
	got := strings.Join(args[len(args)-2:], " ")
	if got != "--kube-api-qps=500 --kube-api-burst=1000" {
		t.Errorf("last flags %q, want the extra flags in order", got)
	}
}
