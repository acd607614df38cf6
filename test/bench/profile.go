package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
)

// profiler records the gateway's CPU profile in back-to-back chunks for as
// long as it runs (pprof merges them: go tool pprof DIR/cpu-*.pb.gz), and
// its heap and metrics after each phase.
type profiler struct {
	base, dir string
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// chunkSeconds is one CPU profile's length: short, so that little of the
// run is lost when the gateway stops mid-chunk.
const chunkSeconds = 5

func startProfiler(base, dir string) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &profiler{base: base, dir: dir, cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, chunkSeconds)
			if err := fetchTo(ctx, url, filepath.Join(dir, fmt.Sprintf("cpu-%03d.pb.gz", i))); err != nil {
				return // the gateway stopped
			}
		}
	}()
	return p, nil
}

// heap saves the heap profile as heap-<name>.pb.gz, and the gateway's
// metrics (pass, queue, callback and request latencies, cumulative over
// the run) as metrics-<name>.txt.
func (p *profiler) heap(name string) {
	_ = fetchTo(context.Background(), p.base+"/debug/pprof/heap", filepath.Join(p.dir, "heap-"+name+".pb.gz"))
	_ = fetchTo(context.Background(), p.base+"/metrics", filepath.Join(p.dir, "metrics-"+name+".txt"))
}

// stop ends the CPU chunks.
func (p *profiler) stop() {
	p.cancel()
	p.wg.Wait()
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, body, 0o644)
}
