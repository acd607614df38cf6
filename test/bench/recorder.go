package main

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Event names, as the gateway's callbacks and the raw program's passes
// call them.
const (
	evCreate = "create"
	evUpdate = "update"
	evDelete = "delete"
)

// recorder counts the callbacks (or, in the raw program, the handled
// passes) per event and keeps when each object was first received per
// event, for the event-to-callback latency.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	first map[string]map[string]time.Time // event -> object name -> first receive
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, first: map[string]map[string]time.Time{}}
}

func (r *recorder) record(event, name string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[event]++
	m := r.first[event]
	if m == nil {
		m = map[string]time.Time{}
		r.first[event] = m
	}
	if _, ok := m[name]; !ok {
		m[name] = now
	}
}

// stats is what a recorder holds, as sent over HTTP by the raw program
// and the gateway's handler.
type stats struct {
	Calls map[string]int                  `json:"calls"`
	First map[string]map[string]time.Time `json:"first"`
}

func (r *recorder) snapshot() stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := stats{Calls: map[string]int{}, First: map[string]map[string]time.Time{}}
	for k, v := range r.calls {
		s.Calls[k] = v
	}
	for ev, m := range r.first {
		c := make(map[string]time.Time, len(m))
		for k, v := range m {
			c[k] = v
		}
		s.First[ev] = c
	}
	return s
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r.snapshot())
}
