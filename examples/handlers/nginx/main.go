// Command nginx is the handler of the guide's NginxServer operator
// (examples/operators/nginx.yaml): it answers the gateway's callbacks with
// an nginx Deployment and reports its available replicas and pod names in
// the status. Run it next to the gateway:
//
//	go run ./examples/handlers/nginx --addr 127.0.0.1:8082
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/opgate/opgate/callbacks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then drains in-flight callbacks.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("nginx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8082", "address to listen on")
	secretFile := fs.String("hmac-secret-file", "", "file holding the WebhookOperator's hmacSecretRef secret; when set, unsigned requests are refused")
	debug := fs.Bool("debug", false, "log every callback")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	mux, err := newMux(log, *secretFile)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: *addr, Handler: newRouter(mux), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving nginx callbacks", "addr", *addr, "signed", *secretFile != "")

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", *addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newMux registers the callbacks, verifying signatures when a secret file
// is given.
func newMux(log *slog.Logger, secretFile string) (*callbacks.Mux, error) {
	opts := []callbacks.MuxOption{callbacks.WithLogger(log)}
	if secretFile != "" {
		secret, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("read the HMAC secret: %w", err)
		}
		// As the gateway takes the Secret's bytes: the verifier drops
		// surrounding whitespace, such as the file's final newline.
		v, err := callbacks.NewVerifier(callbacks.VerifierConfig{Secret: secret})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", secretFile, err)
		}
		opts = append(opts, callbacks.WithVerifier(v))
	}
	mux := callbacks.NewMux(opts...)
	(&handlers{log: log}).register(mux)
	return mux, nil
}

// newRouter puts the Mux behind chi, where an application would add its
// own routes and middleware. Every POST reaches the Mux, which routes on
// the URL path (chi leaves it whole) and answers 404 to unknown ones.
func newRouter(mux *callbacks.Mux) http.Handler {
	r := chi.NewRouter()
	r.Method(http.MethodGet, callbacks.HealthPath, mux)
	r.Method(http.MethodHead, callbacks.HealthPath, mux)
	r.Method(http.MethodPost, "/*", mux)
	return r
}
