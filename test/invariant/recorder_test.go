package invariant

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/opgate/opgate/callbacks"
)

func post(t *testing.T, ctx context.Context, url string, req *callbacks.Request) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(httpReq)
	if err == nil {
		resp.Body.Close()
	}
}

func TestRecorderJudgesEachAnswer(t *testing.T) {
	answers := map[string]func(http.ResponseWriter){
		"ok": func(w http.ResponseWriter) {
			_, _ = w.Write([]byte(`{"status":{"phase":"Ready"},"children":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}]}`))
		},
		"requeue": func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"requeueAfter":"1s"}`)) },
		"error": func(w http.ResponseWriter) {
			_, _ = w.Write([]byte(`{"error":{"message":"no"},"status":{"phase":"Failing"}}`))
		},
		"5xx":      func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) },
		"garbage":  func(w http.ResponseWriter) { _, _ = w.Write([]byte(`not json`)) },
		"empty":    func(w http.ResponseWriter) {},
		"too-slow": func(w http.ResponseWriter) { time.Sleep(300 * time.Millisecond) },
		"hijacked": func(w http.ResponseWriter) { conn, _, _ := http.NewResponseController(w).Hijack(); conn.Close() },
	}
	want := map[string]Outcome{"ok": Succeeded, "requeue": Requeued, "error": Failed, "5xx": Failed,
		"garbage": Failed, "empty": Succeeded, "too-slow": Abandoned, "hijacked": Abandoned}
	rec := NewRecorder()
	srv := httptest.NewServer(rec.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req callbacks.Request
		_ = json.NewDecoder(r.Body).Decode(&req)
		answers[req.Callback](w)
	})))
	defer srv.Close()

	obj := widget("a", 3, nil)
	for cb := range answers {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		if cb != "too-slow" {
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		}
		post(t, ctx, srv.URL, &callbacks.Request{UID: "d-" + cb, Event: callbacks.EventSync, Callback: cb, Attempt: 1, Object: obj})
		cancel()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.Calls()) < len(answers) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the slow handler records after its client gave up
	}
	calls := rec.Calls()
	if len(calls) != len(answers) {
		t.Fatalf("recorded %d calls, want %d", len(calls), len(answers))
	}
	for _, c := range calls {
		if c.Outcome != want[c.Callback] {
			t.Errorf("%s: outcome %s, want %s (code %d)", c.Callback, c.Outcome, want[c.Callback], c.Code)
		}
		if c.ObjectUID != "a" || c.Essence != EssenceOf(obj) || c.Delivery != "d-"+c.Callback {
			t.Errorf("%s: recorded object %s essence %s delivery %s", c.Callback, c.ObjectUID, c.Essence, c.Delivery)
		}
		if c.Callback == "ok" && (!c.HasChildren || len(c.Children) != 1 || c.Status["phase"] != "Ready") {
			t.Errorf("ok: children %v (present %v), status %v", c.Children, c.HasChildren, c.Status)
		}
	}
}

func TestRecordRefusesAnObjectWithoutUID(t *testing.T) {
	obj := widget("", 1, nil)
	if err := NewHistory().Record(Created, obj); err == nil {
		t.Fatal("Record accepted an object without uid")
	}
}
