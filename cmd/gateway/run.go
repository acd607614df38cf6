package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/server"
	"github.com/opgate/opgate/gateway/spec"
)

type runOptions struct {
	files            []string
	kubeconfig       string
	qps              float32
	burst            int
	workers          int
	addr             string
	logLevel         string
	maxResponseBytes int64
	leaderElect      bool
	leaseNamespace   string
	leaseName        string
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
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	f.Float32Var(&o.qps, "kube-api-qps", 100, "queries per second to the API server")
	f.IntVar(&o.burst, "kube-api-burst", 200, "burst of queries to the API server")
	f.IntVar(&o.workers, "workers", 64, "workers per operator (objects handled in parallel)")
	f.StringVar(&o.addr, "addr", ":8080", "address of /metrics, /healthz, /readyz and /schemas/")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.Int64Var(&o.maxResponseBytes, "max-response-bytes", 8<<20, "largest handler answer accepted")
	f.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader with a Lease so only one replica acts; the others stand by, ready")
	f.StringVar(&o.leaseNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's own, from $POD_NAMESPACE or its service account, else default)")
	f.StringVar(&o.leaseName, "leader-election-name", "opgate-gateway", "name of the leader election Lease")
	return cmd
}

func (o *runOptions) run(ctx context.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(logger) // client-go's logs go through the same handler

	var ops []*spec.WebhookOperator
	if len(o.files) > 0 {
		var err error
		if ops, err = spec.LoadFiles(o.files...); err != nil {
			return err
		}
	}
	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gw, err := runner.New(cfg, runner.Options{
		Operators: ops, Workers: o.workers, MaxResponseBytes: o.maxResponseBytes, Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: o.addr, Handler: server.NewRouter(server.Config{Gatherer: reg, Ready: gw.Ready}), ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.ListenAndServe() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	logger.Info("gateway starting", "addr", o.addr, "operators", len(ops), "watchRegistry", len(ops) == 0)

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

func (o *runOptions) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.kubeconfig != "" {
		rules.ExplicitPath = o.kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.qps, o.burst
	return cfg, nil
}
