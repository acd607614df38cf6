package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/opgate/opgate/internal/version"
)

// execute runs the gateway command line with args.
func execute(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestVersionFlagPrintsWhatVersionPrints(t *testing.T) {
	flag, _, err := execute(t, "--version")
	if err != nil {
		t.Fatal(err)
	}
	cmd, _, err := execute(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if want := version.String() + "\n"; flag != want || cmd != want {
		t.Errorf("--version printed %q and version %q, want both %q", flag, cmd, want)
	}
}

func TestLoggerFormat(t *testing.T) {
	tests := []struct {
		name     string
		format   string
		terminal bool
		wantJSON bool
		wantErr  string
	}{
		{"text by default on a terminal", "", true, false, ""},
		{"json by default elsewhere, for log collectors", "", false, true, ""},
		{"json when asked, on a terminal too", "json", true, true, ""},
		{"text when asked, elsewhere too", "text", false, false, ""},
		{"anything else is refused", "xml", true, false, `--log-format "xml": want text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := newLogger(&buf, tt.format, "info", tt.terminal)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello", "operator", "memcached")
			line := buf.Bytes()
			if isJSON := json.Valid(line); isJSON != tt.wantJSON {
				t.Errorf("logged %q; JSON %v, want %v", line, isJSON, tt.wantJSON)
			}
			if !bytes.Contains(line, []byte("memcached")) {
				t.Errorf("logged %q, want the attribute", line)
			}
		})
	}
}

// twoContexts writes a kubeconfig whose current context is "a".
func twoContexts(t *testing.T) string {
	t.Helper()
	const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://b.example:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: a
  context: {cluster: a, user: u}
- name: b
  context: {cluster: b, user: u, namespace: team-b}
current-context: a
`
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestContextSelectsTheKubeconfigContext(t *testing.T) {
	path := twoContexts(t)
	tests := []struct {
		context  string
		wantHost string
		wantNS   string
		wantErr  string
	}{
		{"", "https://a.example:6443", "default", ""},
		{"b", "https://b.example:6443", "team-b", ""},
		{"nope", "", "", `context "nope" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.context, func(t *testing.T) {
			o := runOptions{kubeconfig: path, context: tt.context}
			cfg, ns, err := o.restConfig()
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want one containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case cfg.Host != tt.wantHost || ns != tt.wantNS:
				t.Errorf("host, namespace = %q, %q, want %q, %q", cfg.Host, ns, tt.wantHost, tt.wantNS)
			}
		})
	}
}

func TestRunFlagsHelp(t *testing.T) {
	f := newRunCommand().Flags()
	for name, want := range map[string]string{
		"kubeconfig": "$KUBECONFIG",
		"context":    "kubeconfig context",
		"log-format": "text or json",
	} {
		flag := f.Lookup(name)
		if flag == nil || !strings.Contains(flag.Usage, want) {
			t.Errorf("--%s: %+v, want a usage mentioning %q", name, flag, want)
		}
	}
}

func TestSecretNamespaceIsTheFlagElseThePodsElseTheContexts(t *testing.T) {
	tests := []struct {
		name, flag, pod, context, want string
	}{
		{"the flag wins", "secrets", "gateway-ns", "team-b", "secrets"},
		{"in a pod, the pod's namespace", "", "gateway-ns", "team-b", "gateway-ns"},
		{"from a laptop, the kubeconfig context's", "", "", "team-b", "team-b"},
		{"else default", "", "", "", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickSecretNamespace(tt.flag, tt.pod, tt.context); got != tt.want {
				t.Errorf("pickSecretNamespace(%q, %q, %q) = %q, want %q", tt.flag, tt.pod, tt.context, got, tt.want)
			}
		})
	}
}

// Every command that reads a kubeconfig names the file it did not find:
// client-go alone says "no configuration has been provided, try setting
// KUBERNETES_MASTER", which names neither $KUBECONFIG nor the file.
func TestEveryCommandNamesTheKubeconfigItDidNotFind(t *testing.T) {
	dir := t.TempDir()
	missing, other := filepath.Join(dir, "missing"), filepath.Join(dir, "other")
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // never in a pod here
	commands := [][]string{
		{"run"},
		{"status"},
		{"reconcile", "memcached", "example"},
		{"rbac", "--from-cluster"},
		{"remove-operators", "-l", "app=x"},
	}
	sources := []struct {
		name, kubeconfigEnv string
		flags               []string
		want                []string
	}{
		{"$KUBECONFIG", missing, nil, []string{missing}},
		{"$KUBECONFIG, two files", missing + string(filepath.ListSeparator) + other, nil, []string{missing, other}},
		{"~/.kube/config", "", nil, []string{clientcmd.RecommendedHomeFile}},
		{"--kubeconfig", "", []string{"--kubeconfig", missing}, []string{missing}},
	}
	for _, src := range sources {
		for _, args := range commands {
			t.Run(src.name+"/"+args[0], func(t *testing.T) {
				if _, err := os.Stat(clientcmd.RecommendedHomeFile); src.kubeconfigEnv == "" && src.flags == nil && err == nil {
					t.Skipf("%s exists (client-go reads $HOME once, at start)", clientcmd.RecommendedHomeFile)
				}
				t.Setenv("KUBECONFIG", src.kubeconfigEnv)
				_, _, err := execute(t, append(slices.Clone(args), src.flags...)...)
				if err == nil {
					t.Fatal("no error")
				}
				for _, file := range src.want {
					if !strings.Contains(err.Error(), file) {
						t.Errorf("error = %v, want one naming %s", err, file)
					}
				}
			})
		}
	}
}
