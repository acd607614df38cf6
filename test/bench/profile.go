package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// profiler records a process's CPU profile in back-to-back chunks for as
// long as it runs (pprof merges them: go tool pprof DIR/cpu-*.pb.gz), and
// its heap and metrics after each phase.
type profiler struct {
	fetch  fetcher
	dir    string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // why not even the first chunk came, if so
}

// fetcher GETs a path (with its query) from the profiled process.
type fetcher func(ctx context.Context, path string) ([]byte, error)

// chunkSeconds is one CPU profile's length: short, so that little of the
// run is lost when the gateway stops mid-chunk.
const chunkSeconds = 5

func startProfiler(fetch fetcher, dir string) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &profiler{fetch: fetch, dir: dir, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			path := fmt.Sprintf("/debug/pprof/profile?seconds=%d", chunkSeconds)
			if err := p.save(ctx, path, fmt.Sprintf("cpu-%03d.pb.gz", i)); err != nil {
				if i == 0 && ctx.Err() == nil {
					p.err = err
				}
				return // the process stopped
			}
		}
	}()
	return p, nil
}

// heap saves the heap profile as heap-<name>.pb.gz, and the process's
// metrics (the gateway's: pass, queue, callback and request latencies,
// cumulative over the run) as metrics-<name>.txt.
func (p *profiler) heap(name string) {
	_ = p.save(context.Background(), "/debug/pprof/heap", "heap-"+name+".pb.gz")
	_ = p.save(context.Background(), "/metrics", "metrics-"+name+".txt")
}

func (p *profiler) save(ctx context.Context, path, file string) error {
	body, err := p.fetch(ctx, path)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.dir, file), body, 0o644)
}

// stop ends the CPU chunks; its error says why there were none.
func (p *profiler) stop() error {
	p.cancel()
	p.wg.Wait()
	return p.err
}

// httpFetcher GETs from a plain HTTP debug server (the gateway's, the raw
// program's, the handler's).
func httpFetcher(base string) fetcher {
	return func(ctx context.Context, path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", base+path, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
}

// apiServerFetcher GETs from kube-apiserver (its /debug/pprof and /metrics
// need the admin's credentials).
func apiServerFetcher(rc rest.Interface) fetcher {
	return func(ctx context.Context, path string) ([]byte, error) {
		p, query, _ := strings.Cut(path, "?")
		req := rc.Get().AbsPath(p)
		if query != "" {
			values, err := url.ParseQuery(query)
			if err != nil {
				return nil, err
			}
			for k, vs := range values {
				for _, v := range vs {
					req = req.Param(k, v)
				}
			}
		}
		return req.DoRaw(ctx)
	}
}
