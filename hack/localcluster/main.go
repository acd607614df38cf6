// Command localcluster starts and stops opgate's local Kubernetes cluster:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok as
// processes on 127.0.0.1, from the binaries `make tools` builds.
//
//	localcluster up   --dir DIR [--port 6443] [--nodes 1] [--bin-dir DIR]  start and detach
//	localcluster run  --dir DIR [--port 6443] [--nodes 1] [--bin-dir DIR]  start, stop on Ctrl-C
//	localcluster down --dir DIR                                            stop what up started
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opgate/opgate/internal/localcluster"
)

const usage = `usage: localcluster up|run|down [flags]

  up    start a cluster and leave it running (PIDs in DIR/pids)
  run   start a cluster, stay in the foreground, stop it on Ctrl-C
  down  stop the cluster started in DIR; says so when nothing runs

Run "localcluster CMD -h" for the flags of CMD.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err) // the package's errors begin with "localcluster:"
		}
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("localcluster: missing command")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd, rest := args[0], args[1:]; cmd {
	case "up":
		return up(ctx, rest, stdout, stderr)
	case "run":
		return runForeground(ctx, rest, stdout, stderr)
	case "down":
		return down(rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("localcluster: unknown command %q", cmd)
	}
}

// startFlags are the flags of up and run.
type startFlags struct {
	dir, binDir    string
	port, nodes    int
	timeout, grace time.Duration
	verbose        bool
	flags          *flag.FlagSet
}

func parseStartFlags(name string, args []string, stderr io.Writer) (*startFlags, error) {
	f := &startFlags{flags: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs := f.flags
	fs.SetOutput(stderr)
	fs.StringVar(&f.dir, "dir", filepath.Join(".cache", "cluster"), "data directory: etcd data, certificates, kubeconfig, logs/, pids/")
	fs.IntVar(&f.port, "port", localcluster.DefaultAPIServerPort,
		"kube-apiserver port on 127.0.0.1; etcd uses port+1 and port+2, controller-manager port+3, scheduler port+4")
	fs.IntVar(&f.nodes, "nodes", 1, "number of kwok nodes")
	fs.StringVar(&f.binDir, "bin-dir", localcluster.DefaultBinDir(), "directory of etcd, kube-apiserver, ... (default from $OPGATE_TOOLS_DIR/bin)")
	fs.DurationVar(&f.timeout, "timeout", 3*time.Minute, "how long the start may take, readiness included")
	fs.DurationVar(&f.grace, "grace", 10*time.Second, "how long a process may take to exit after SIGTERM before SIGKILL")
	fs.BoolVar(&f.verbose, "v", false, "log every step")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("localcluster %s: unexpected arguments %q", name, fs.Args())
	}
	return f, nil
}

func (f *startFlags) config(stderr io.Writer, killWithParent bool) localcluster.Config {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	return localcluster.Config{
		BinDir:          f.binDir,
		DataDir:         f.dir,
		APIServerPort:   f.port,
		Nodes:           f.nodes,
		StartTimeout:    f.timeout,
		StopGracePeriod: f.grace,
		KillWithParent:  killWithParent,
		Logger:          slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
}

func start(ctx context.Context, cfg localcluster.Config, stdout io.Writer) (*localcluster.Cluster, error) {
	fmt.Fprintf(stdout, "starting local cluster in %s (API server port %d, %d node(s)) ...\n", cfg.DataDir, cfg.APIServerPort, cfg.Nodes)
	began := time.Now()
	c, err := localcluster.Start(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("localcluster: interrupted; stopped what was started: %w", err)
		}
		return nil, err
	}
	cfg = c.Config()
	fmt.Fprintf(stdout, "cluster ready in %s: API server https://127.0.0.1:%d, %d node(s); logs in %s\n",
		time.Since(began).Round(100*time.Millisecond), cfg.APIServerPort, cfg.Nodes, filepath.Join(cfg.DataDir, "logs"))
	return c, nil
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseStartFlags("up", args, stderr)
	if err != nil {
		return err
	}
	c, err := start(ctx, f.config(stderr, false), stdout)
	if err != nil {
		return err
	}
	dir := c.Config().DataDir
	fmt.Fprintf(stdout, "\nexport KUBECONFIG=%s\n\nstop it with: go run ./hack/localcluster down --dir %s\n", shellQuote(c.Kubeconfig()), shellQuote(dir))
	return nil
}

func runForeground(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseStartFlags("run", args, stderr)
	if err != nil {
		return err
	}
	c, err := start(ctx, f.config(stderr, true), stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nin another terminal:\n  export KUBECONFIG=%s\n  kubectl get nodes\n\nCtrl-C stops the cluster.\n", c.Kubeconfig())
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping ...")
	if err := c.Stop(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}

func down(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", filepath.Join(".cache", "cluster"), "data directory the cluster was started with")
	grace := fs.Duration("grace", 10*time.Second, "how long a process may take to exit after SIGTERM before SIGKILL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopped, err := localcluster.Down(*dir, *grace)
	if err != nil {
		return err
	}
	if len(stopped) == 0 {
		fmt.Fprintf(stdout, "nothing is running in %s\n", *dir)
		return nil
	}
	fmt.Fprintf(stdout, "stopped %s\n", strings.Join(stopped, ", "))
	return nil
}

func shellQuote(s string) string {
	if !strings.ContainsAny(s, " '\"$\\`") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
