// Package image tests the gateway's container image as `make image` builds
// it: the tarball is read back with the standard library only (not with the
// library that wrote it), so that the test checks the format, not the
// writer's idea of it.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const testVersion = "v0.0.0-imagetest"

// savedImage is the part of a `docker save` tarball's manifest.json and
// image config this test reads.
type savedImage struct {
	Config   string
	RepoTags []string
	Layers   []string
}

type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		User       string            `json:"User"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

// buildImage runs `make image-tar` (the recipe of `make image`, without
// rebuilding the tools) into a temporary directory and returns the
// tarball's files by name.
func buildImage(t *testing.T) map[string][]byte {
	t.Helper()
	tools := os.Getenv("KUBEBUILDER_ASSETS")
	if _, err := os.Stat(filepath.Join(tools, "opgate-image")); tools == "" || err != nil {
		t.Fatalf("opgate-image not found in KUBEBUILDER_ASSETS=%q: run `make tools` (hack/build-tools.sh builds it from hack/tools/image)", tools)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "image.tar")
	cmd := exec.Command("make", "--no-print-directory", "-C", "../..", "image-tar",
		"VERSION="+testVersion, "IMAGE_GOARCH="+runtime.GOARCH, "TOOLS_BIN="+tools,
		"STATIC_BIN="+filepath.Join(dir, "gateway"), "IMAGE_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image-tar: %v\n%s", err, b)
	}
	return readTar(t, out)
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return untar(t, f)
}

func untar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		files[h.Name] = b
		files["header:"+strings.TrimSuffix(h.Name, "/")] = fmt.Appendf(nil, "%d:%d:%o", h.Uid, h.Gid, h.Mode)
	}
}

func TestImageRunsTheStampedGatewayAsNonroot(t *testing.T) {
	files := buildImage(t)
	var manifest []savedImage
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v (%d images), want one image", err, len(manifest))
	}
	if want := "opgate/gateway:" + testVersion; !slices.Contains(manifest[0].RepoTags, want) {
		t.Errorf("tags %v, want %s", manifest[0].RepoTags, want)
	}
	var cfg imageConfig
	if err := json.Unmarshal(files[manifest[0].Config], &cfg); err != nil {
		t.Fatalf("config %s: %v", manifest[0].Config, err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/gateway", "run"}) || len(cfg.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/gateway run] and no cmd", cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (distroless nonroot)", cfg.Config.User)
	}
	for key, want := range map[string]string{
		"org.opencontainers.image.version": testVersion,
		"org.opencontainers.image.title":   "opgate gateway",
		"org.opencontainers.image.source":  "https://github.com/opgate/opgate",
	} {
		if got := cfg.Config.Labels[key]; got != want {
			t.Errorf("label %s = %q, want %q", key, got, want)
		}
	}

	root := map[string][]byte{}
	for _, l := range manifest[0].Layers {
		zr, err := gzip.NewReader(bytes.NewReader(files[l]))
		if err != nil {
			t.Fatalf("layer %s: %v", l, err)
		}
		for k, v := range untar(t, zr) {
			root[k] = v
		}
	}
	if !bytes.Contains(root["etc/passwd"], []byte("nonroot:x:65532:65532:")) {
		t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", root["etc/passwd"])
	}
	// Owned by root and not writable by 65532: the binary cannot be
	// replaced even where the root filesystem is writable.
	if got := string(root["header:gateway"]); got != "0:0:755" {
		t.Errorf("/gateway uid:gid:mode = %s, want 0:0:755", got)
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	if err := os.WriteFile(bin, root["gateway"], 0o755); err != nil {
		t.Fatal(err)
	}
	requireStatic(t, bin)
	if runtime.GOOS != "linux" {
		t.Skipf("the image's linux binary cannot run on %s", runtime.GOOS)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), testVersion) {
		t.Errorf("/gateway version: %v, output %q, want it to print %s", err, out, testVersion)
	}
}

// requireStatic fails unless bin is an ELF without an interpreter: the
// image has no libc, so a dynamically linked binary would not start.
func requireStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("/gateway is not an ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("/gateway is dynamically linked (it has an ELF interpreter): build it with CGO_ENABLED=0")
		}
	}
}

// TestDockerfileBuildsTheSameImage keeps the Dockerfile, for those with
// Docker, in step with what `make image` builds.
func TestDockerfileBuildsTheSameImage(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ENTRYPOINT ["/gateway", "run"]`,
		"USER 65532:65532",
		"FROM gcr.io/distroless/static:nonroot",
		"make static ",
		"org.opencontainers.image.version=",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile has no %q", want)
		}
	}
}
