package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/opgate/opgate/gateway/call"
	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/server"
	"github.com/opgate/opgate/gateway/spec"
	"github.com/opgate/opgate/gateway/webui"
)

type runOptions struct {
	files            []string
	kubeconfig       string
	context          string
	qps              float32
	burst            int
	workers          int
	addr             string
	logLevel         string
	logFormat        string
	maxResponseBytes int64
	leaderElect      bool
	leaseNamespace   string
	leaseName        string
	operatorRecord   string
	ui               bool
	secretNamespace  string
	profiling        bool
}

func newRunCommand() *cobra.Command {
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the gateway: watch resources and call their handlers",
		Long: `Run the gateway. Without -f it watches WebhookOperator objects (install crds/ first)
and starts, changes and stops operators live. With -f it runs the operators in the
given files (several documents per file, several files) and needs no CRD.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context()) },
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "file", "f", nil, "WebhookOperator file or directory (repeatable); without it, WebhookOperator objects are watched")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the files in $KUBECONFIG, else ~/.kube/config; the pod's service account when neither exists)")
	f.StringVar(&o.context, "context", "", "kubeconfig context to use (default: its current-context)")
	rateLimitVar(f, &o.qps, "kube-api-qps", 1000, "client-side limit of queries per second to the API server, at least one a minute (0.0167: below, the gateway would all but stop); negative: none, the server's API Priority and Fairness protects it either way")
	positiveVar(f, &o.burst, "kube-api-burst", 2000, "client-side burst of queries to the API server")
	positiveVar(f, &o.workers, "workers", 64, "workers per operator (objects handled in parallel)")
	f.StringVar(&o.addr, "addr", ":8080", "address of /metrics, /healthz, /readyz, /schemas/ and the web view /ui/")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "", "text or json (default: text when stderr is a terminal, else json)")
	positiveVar(f, &o.maxResponseBytes, "max-response-bytes", call.DefaultMaxResponseBytes, "largest handler answer accepted")
	f.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader with a Lease so only one replica acts; the others stand by, ready")
	namespaceVar(f, &o.leaseNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's own, from $POD_NAMESPACE or its service account, else default)")
	leaseNameVar(f, &o.leaseName, "leader-election-name", "opgate-gateway", "name of the leader election Lease (a DNS-1123 subdomain)")
	f.StringVar(&o.operatorRecord, "operator-record", "", "with -f: namespace/name of a ConfigMap, this gateway's alone, recording the operators it runs, so that a restart without one releases its finalizers")
	f.BoolVar(&o.ui, "ui", true, "serve the read-only web view under /ui/ on --addr")
	f.BoolVar(&o.profiling, "profiling", false, "serve Go's pprof profiles under /debug/pprof/ on --addr (for diagnosing CPU and memory use)")
	f.StringVar(&o.secretNamespace, "secret-namespace", "", "the only namespace handler Secrets (hmacSecretRef, bearerTokenSecretRef, clientCertSecretRef) may be in; operators referencing others are refused (default: $POD_NAMESPACE, else the kubeconfig context's namespace, else default)")
	return cmd
}

func (o *runOptions) run(ctx context.Context) error {
	logger, err := newLogger(os.Stderr, o.logFormat, o.logLevel, term.IsTerminal(int(os.Stderr.Fd())))
	if err != nil {
		return err
	}
	klog.SetSlogLogger(logger) // client-go's logs go through the same handler

	record, err := parseRecordRef(o.operatorRecord)
	if err != nil {
		return err
	}
	if record.Name != "" && len(o.files) == 0 {
		return errors.New("--operator-record needs -f: without files, each WebhookOperator records its own kinds")
	}
	var ops []*spec.WebhookOperator
	if len(o.files) > 0 {
		if ops, err = spec.LoadFiles(o.files...); err != nil {
			return err
		}
	}
	cfg, contextNamespace, err := o.restConfig()
	if err != nil {
		return err
	}
	secretNamespace := pickSecretNamespace(o.secretNamespace, os.Getenv("POD_NAMESPACE"), contextNamespace)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw, err := runner.New(cfg, runner.Options{
		Operators: ops, OperatorRecord: record, Workers: o.workers, MaxResponseBytes: o.maxResponseBytes, Logger: logger, Registerer: reg,
		SecretNamespace: secretNamespace,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	routes, err := o.opsRoutes(reg, gw.Ready, gw.View, logger)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: o.addr, Handler: server.NewRouter(routes), ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.ListenAndServe() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	logger.Info("gateway starting", "addr", o.addr, "operators", len(ops), "watchRegistry", len(ops) == 0, "secretNamespace", secretNamespace)

	runErr := make(chan error, 1)
	if o.leaderElect {
		go func() { runErr <- gw.RunElected(ctx, runner.Election{Namespace: o.leaseNamespace, Name: o.leaseName}) }()
	} else {
		go func() { runErr <- gw.Run(ctx) }()
	}
	select {
	case err := <-srvErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve %s: %w", o.addr, err)
		}
		return nil
	case err := <-runErr:
		return err
	}
}

// opsRoutes is what the ops server serves: the web view only with --ui.
func (o *runOptions) opsRoutes(reg prometheus.Gatherer, ready func() error, view func() []engine.OperatorView, logger *slog.Logger) (server.Config, error) {
	routes := server.Config{Gatherer: reg, Ready: ready, Profiling: o.profiling}
	if o.ui {
		ui, err := webui.New(webui.Config{View: view, Logger: logger})
		if err != nil {
			return server.Config{}, err
		}
		routes.UI = ui
	}
	return routes, nil
}

// parseRecordRef reads --operator-record's namespace/name.
func parseRecordRef(s string) (types.NamespacedName, error) {
	if s == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("--operator-record %q: want namespace/name", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// restConfig loads the kubeconfig as kubectl does: --kubeconfig, else the
// files in $KUBECONFIG merged, else ~/.kube/config; only when none of them
// holds a configuration, the pod's service account (in-cluster). It also
// returns the namespace kubectl would use: the context's, else the pod's
// in-cluster, else "default".
func (o *runOptions) restConfig() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.kubeconfig != "" {
		rules.ExplicitPath = o.kubeconfig
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context})
	if o.context != "" {
		raw, err := loader.RawConfig()
		if err != nil {
			return nil, "", fmt.Errorf("load kubeconfig: %w", err)
		}
		if _, ok := raw.Contexts[o.context]; !ok {
			return nil, "", fmt.Errorf("--context: context %q does not exist in the kubeconfig", o.context)
		}
	}
	cfg, err := loader.ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, "", noKubeconfig(rules, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.qps, o.burst
	ns, _, err := loader.Namespace()
	if err != nil || ns == "" {
		ns = metav1.NamespaceDefault
	}
	return cfg, ns, nil
}

// noKubeconfig names the kubeconfig files looked at when none served and
// there was no pod's service account to fall back on: client-go's "no
// configuration has been provided, try setting KUBERNETES_MASTER" names
// none, and a $KUBECONFIG naming a file that is not there is the usual cause.
func noKubeconfig(rules *clientcmd.ClientConfigLoadingRules, err error) error {
	source := "~/.kube/config"
	switch {
	case rules.ExplicitPath != "":
		source = "--kubeconfig"
	case os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "":
		source = "$" + clientcmd.RecommendedConfigPathEnvVar
	}
	files := rules.GetLoadingPrecedence()
	missing := slices.DeleteFunc(slices.Clone(files), func(f string) bool {
		_, statErr := os.Stat(f)
		return !errors.Is(statErr, fs.ErrNotExist)
	})
	what := fmt.Sprintf("%s (%s) holds no configuration", source, strings.Join(files, ", "))
	switch {
	case len(missing) == 1 && len(files) == 1:
		what = fmt.Sprintf("%s: %s does not exist", source, missing[0])
	case len(missing) == len(files):
		what = fmt.Sprintf("%s: none of %s exists", source, strings.Join(missing, ", "))
	}
	return fmt.Errorf("load kubeconfig: %s, and outside a pod there is no service account to use instead (%w)", what, err)
}

// pickSecretNamespace is --secret-namespace, else the pod's namespace (the
// chart sets POD_NAMESPACE from the downward API), else the namespace
// kubectl would use with the same kubeconfig: a gateway run from a laptop
// reads Secrets where `kubectl get secret` looks.
func pickSecretNamespace(flag, podNamespace, contextNamespace string) string {
	for _, ns := range []string{flag, podNamespace, contextNamespace} {
		if ns != "" {
			return ns
		}
	}
	return metav1.NamespaceDefault
}

// newLogger logs to w at level, as text or json; format "" picks text on a
// terminal, where a person reads it, and JSON elsewhere, where a log
// collector does.
func newLogger(w io.Writer, format, level string, terminal bool) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch {
	case format == "json" || format == "" && !terminal:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case format == "text" || format == "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
