// Package testenv starts a real kube-apiserver and etcd for integration
// tests (controller-runtime's envtest), from the binaries `make tools`
// builds. It never downloads anything: missing binaries are an error that
// says how to build them.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	env    *envtest.Environment
}

// AssetsDir returns the directory holding etcd and kube-apiserver, or an
// error telling the developer to run `make tools`.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		return "", errors.New("KUBEBUILDER_ASSETS is not set: run `make tools` and the tests through `make test` (or export KUBEBUILDER_ASSETS=~/.cache/opgate/k8s-v1.32.4/bin)")
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("%s not found in KUBEBUILDER_ASSETS=%s: run `make tools`: %w", name, dir, err)
		}
	}
	return dir, nil
}

// Start starts etcd and kube-apiserver and installs the CRDs found in
// crdPaths (files or directories).
func Start(crdPaths ...string) (*Env, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		DownloadBinaryAssets:  false,
		CRDDirectoryPaths:     crdPaths,
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest control plane from %s: %w", dir, err)
	}
	// Tests create many objects quickly; client-go's default 5 QPS would
	// make them slow for no reason.
	cfg.QPS, cfg.Burst = 200, 400
	return &Env{Config: cfg, env: env}, nil
}

// StartForTest starts a control plane for one test, as Start does, and
// stops it when the test ends; a failure to start fails the test.
func StartForTest(t testing.TB, crdPaths ...string) *Env {
	t.Helper()
	env, err := Start(crdPaths...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	return env
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// KubeConfig is a kubeconfig of a cluster administrator (system:masters),
// for tools the tests run as processes, such as helm.
func (e *Env) KubeConfig() ([]byte, error) {
	user, err := e.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, e.Config)
	if err != nil {
		return nil, fmt.Errorf("add an administrator to the envtest control plane: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of the envtest administrator: %w", err)
	}
	return data, nil
}
