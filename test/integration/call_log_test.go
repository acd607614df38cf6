package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/runner"
	"github.com/opgate/opgate/gateway/spec"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestCallLogRecordsCarryTheCallsAttributes holds the records of a call
// (built only when kept, invoke.go's callLog) to the attributes that say
// which call they are about, at debug level for a success and at the
// default level for a failure that will be retried.
func TestCallLogRecordsCarryTheCallsAttributes(t *testing.T) {
	ns := newNamespace(t)
	var updates atomic.Int32
	h := newHandler(t, func(req callbacks.Request) (int, any) {
		if req.Callback == "resize" && updates.Add(1) == 1 {
			return 500, []byte("not now")
		}
		return 200, map[string]any{}
	})
	logs := &logBuffer{}
	opts := runner.Options{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	stop, _ := startGatewayWithOptions(t, opts, operatorFor(t, "calllog", ns, h.URL, func(s *spec.OperatorSpec) {
		s.Children = nil
		s.Retry = fastRetry(100 * time.Millisecond)
		s.Callbacks = []spec.Callback{{ID: "make", Events: []spec.Event{spec.EventCreate}}, {ID: "resize", Events: []spec.Event{spec.EventUpdate}}}
	}))
	defer stop()
	createWidget(t, ns, "w", 1)
	object := ns + "/w"
	want := []map[string]any{
		{"msg": "callback succeeded", "level": "DEBUG", "callback": "make", "event": "create", "object": object, "attempt": 1.0},
		{"msg": "callback failed; will retry", "level": "WARN", "callback": "resize", "event": "update", "object": object, "attempt": 1.0},
		{"msg": "callback succeeded", "level": "DEBUG", "callback": "resize", "event": "update", "object": object, "attempt": 2.0},
	}
	eventually(t, 10*time.Second, func() error {
		if len(h.calls("make")) == 0 {
			return fmt.Errorf("create not called yet")
		}
		return nil
	})
	updateWidget(t, ns, "w", func(u *unstructured.Unstructured) {
		_ = unstructured.SetNestedField(u.Object, int64(2), "spec", "size")
	})
	eventually(t, 20*time.Second, func() error {
		for _, w := range want {
			if !hasRecord(t, logs.String(), w) {
				return fmt.Errorf("no record %v in:\n%s", w, logs.String())
			}
		}
		return nil
	})
}

// hasRecord says whether one JSON log record has every key of want with
// its value.
func hasRecord(t *testing.T, logs string, want map[string]any) bool {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		matched := true
		for k, v := range want {
			if rec[k] != v {
				matched = false
				break
			}
		}
		if matched {
			return true
		}
	}
	return false
}
