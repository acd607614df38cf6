package runner

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLeaseNamespaceIsThePodsOwn(t *testing.T) {
	dir := t.TempDir()
	saFile := filepath.Join(dir, "namespace")
	if err := os.WriteFile(saFile, []byte("from-sa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, env, file, want string
	}{
		{"POD_NAMESPACE first", "from-env", saFile, "from-env"},
		{"then the service account's", "", saFile, "from-sa"},
		{"default outside a cluster", "", filepath.Join(dir, "missing"), "default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "POD_NAMESPACE" {
					return tt.env
				}
				return ""
			}
			if got := leaseNamespace(getenv, tt.file); got != tt.want {
				t.Errorf("leaseNamespace = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIdentitiesDifferOnOneHost(t *testing.T) {
	a, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewIdentity()
	host, _ := os.Hostname()
	if a == b {
		t.Errorf("two identities on one host are equal: %q", a)
	}
	if len(a) <= len(host)+1 || a[:len(host)+1] != host+"_" {
		t.Errorf("identity %q does not start with the hostname %q and _", a, host)
	}
}

func TestElectedRunRefusesALateStart(t *testing.T) {
	r := &electedRun{done: make(chan error, 1)}
	if !r.giveUp() {
		t.Fatal("giveUp() = false before any start")
	}
	if r.start() {
		t.Error("start() = true after RunElected stopped waiting")
	}
	r = &electedRun{done: make(chan error, 1)}
	if !r.start() || r.giveUp() {
		t.Error("a started run is not waited for")
	}
}
