package callbacks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HandlerFunc handles one callback. A non-nil error becomes the response's
// error field (see ErrorFor): temporary unless it is, or wraps, a Permanent
// error. The rest of a response returned with an error is still sent, and
// the gateway still applies its status and records its events (never its
// children; see Response.Error).
type HandlerFunc func(ctx context.Context, req *Request) (*Response, error)

// DefaultMaxRequestBytes bounds a request body: the gateway's objects,
// children and related objects fit well under it, and a body larger than
// this is refused before it is decoded.
const DefaultMaxRequestBytes = 16 << 20

// HealthPath is answered with 200 to GET and HEAD, for liveness probes.
const HealthPath = "/healthz"

// Mux is an http.Handler that decodes a CallbackRequest and routes it to the
// HandlerFunc registered for its exact URL path, failing that for its
// callback id, failing that for a registered path that ends the request
// path (the longest such path wins, so that a handler URL with a base path,
// "http://h/memcached", still reaches mux.Handle("/create")), failing that
// for its event. The exact path wins because it is what the
// WebhookOperator's callbacks[].path names, and it stays right when a
// registration renames its ids; a registered id beats a suffix, which may
// just be the end of the handler URL's own path ("http://h/app/delete"). It answers:
//
//   - 200 with the encoded Response, an empty one when the handler returns
//     nil, nil;
//   - 400 to a body that is not a valid CallbackRequest, 413 to one over
//     the size limit, 405 to another method than POST;
//   - 401 when a verifier is set and the signature is missing, wrong or out
//     of the replay window;
//   - 404 when no handler matches;
//   - 500 when the handler panics, or answers what the gateway would
//     refuse (an Event reason that is not CamelCase, a nil child, an error
//     without a message: the rules of schema/response.json; an answer over
//     MaxResponseDepth, MaxResponseElements or the gateway's size limit,
//     DefaultMaxResponseBytes unless WithMaxResponseBytes) or what cannot
//     be encoded.
//
// Every non-200 answer carries {"error": {...}}. Only a malformed request
// (400) is marked permanent: a 401, 404, 405 or 413 is cured by
// configuration (a rotated secret, a registered handler, a route, a larger
// limit), so the gateway retries it, as it does a 500 (docs/contract.md).
// Register handlers before serving; a Mux is safe for concurrent use.
type Mux struct {
	verifier *Verifier
	maxBytes int64
	// maxAnswer is the gateway's --max-response-bytes, which the Mux holds
	// its answers to.
	maxAnswer int64
	log       *slog.Logger
	now       func() time.Time

	mu      sync.RWMutex
	byPath  map[string]HandlerFunc
	byID    map[string]HandlerFunc
	byEvent map[Event]HandlerFunc
}

// MuxOption configures a Mux.
type MuxOption func(*Mux)

// WithVerifier makes the Mux refuse, with 401, every request whose Standard
// Webhooks signature the verifier does not accept. Use it when the
// WebhookOperator sets handler.auth.hmacSecretRef. The signature covers the
// body, not the URL path: a captured request replayed within the window to
// another registered path reaches that path's handler. Where that matters
// and the transport is not https, register callback ids or events, which
// the body carries signed, and no paths (docs/handlers.md).
func WithVerifier(v *Verifier) MuxOption { return func(m *Mux) { m.verifier = v } }

// WithMaxRequestBytes replaces DefaultMaxRequestBytes; n <= 0 keeps it.
func WithMaxRequestBytes(n int64) MuxOption {
	return func(m *Mux) {
		if n > 0 {
			m.maxBytes = n
		}
	}
}

// WithMaxResponseBytes sets the largest answer the Mux sends with 200, for
// a gateway run with --max-response-bytes other than
// DefaultMaxResponseBytes; n <= 0 keeps the default.
func WithMaxResponseBytes(n int64) MuxOption {
	return func(m *Mux) {
		if n > 0 {
			m.maxAnswer = n
		}
	}
}

// WithLogger sets where the Mux logs refused requests, handler errors and,
// at debug level, every call; nothing is logged without it.
func WithLogger(l *slog.Logger) MuxOption {
	return func(m *Mux) {
		if l != nil {
			m.log = l
		}
	}
}

// WithClock sets the clock that times a request's arrival, from which the
// handler's deadline is measured; time.Now when nil. For tests of a
// handler whose clock is not the gateway's.
func WithClock(now func() time.Time) MuxOption {
	return func(m *Mux) {
		if now != nil {
			m.now = now
		}
	}
}

// NewMux returns a Mux without handlers.
func NewMux(opts ...MuxOption) *Mux {
	m := &Mux{
		maxBytes:  DefaultMaxRequestBytes,
		maxAnswer: DefaultMaxResponseBytes,
		log:       slog.New(slog.DiscardHandler),
		now:       time.Now,
		byPath:    map[string]HandlerFunc{},
		byID:      map[string]HandlerFunc{},
		byEvent:   map[Event]HandlerFunc{},
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Handle routes requests to fn by pattern: a pattern that starts with "/"
// is a URL path ("/create", a callback's path in the WebhookOperator),
// matched exactly against the request's path; any other is a callback id
// ("create-deployment"), which never starts with "/". Like http.ServeMux it
// panics on an empty pattern, a nil fn or a second registration, which are
// programming errors.
func (m *Mux) Handle(pattern string, fn HandlerFunc) {
	if pattern == "" || fn == nil {
		panic("callbacks: Mux.Handle needs a path or callback id and a function")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	routes := m.byID
	if strings.HasPrefix(pattern, "/") {
		routes = m.byPath
	}
	if _, dup := routes[pattern]; dup {
		panic(fmt.Sprintf("callbacks: %q registered twice", pattern))
	}
	routes[pattern] = fn
}

// HandleEvent routes every callback of this event that has no handler of
// its own path or id to fn. It panics like Handle.
func (m *Mux) HandleEvent(event Event, fn HandlerFunc) {
	if event == "" || fn == nil {
		panic("callbacks: Mux.HandleEvent needs an event and a function")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.byEvent[event]; dup {
		panic(fmt.Sprintf("callbacks: event %q registered twice", event))
	}
	m.byEvent[event] = fn
}

func (m *Mux) lookup(path string, req *Request) HandlerFunc {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if fn, ok := m.byPath[path]; ok {
		return fn
	}
	// The id before a suffix: a handler URL whose own path ends in a
	// registered path ("http://h/app/delete"), its callbacks routed by id,
	// would otherwise send every event to that path's handler.
	if fn, ok := m.byID[req.Callback]; ok {
		return fn
	}
	if fn := m.bySuffix(path); fn != nil {
		return fn
	}
	return m.byEvent[req.Event]
}

// bySuffix finds the longest registered path that ends the request path at
// a segment boundary: the gateway POSTs to the handler URL's own path joined
// with the callback's ("http://h/memcached" + "/create" is
// "/memcached/create"), and a handler registers only the callback's path.
// Registered paths start with "/", so a suffix match is a whole segment.
func (m *Mux) bySuffix(path string) HandlerFunc {
	var best string
	var fn HandlerFunc
	for p, f := range m.byPath {
		if len(p) > len(best) && p != "/" && strings.HasSuffix(path, p) {
			best, fn = p, f
		}
	}
	return fn
}

func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == HealthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed; callbacks are POSTed", r.Method))
		return
	}
	arrived := m.now()
	req, status, err := m.readRequest(w, r)
	if err != nil {
		m.log.WarnContext(r.Context(), "refused callback request", "status", status, "error", err)
		refuse(w, status, err.Error())
		return
	}
	call := callOf(req) // before the handler, which may change its request
	fn := m.lookup(r.URL.Path, req)
	if fn == nil {
		m.logCall(r.Context(), slog.LevelWarn, call, "no handler for callback", "path", r.URL.Path)
		refuse(w, http.StatusNotFound, fmt.Sprintf("no handler for path %q, callback %q or event %q", r.URL.Path, req.Callback, req.Event))
		return
	}
	resp, err := m.call(r.Context(), fn, req, handlerDeadline(r.Header, req, arrived))
	var panicked *panicError
	if errors.As(err, &panicked) {
		// The value stays in the handler's log: the answer ends up in the
		// gateway's Events, which anyone who may read the object reads,
		// and a panic's value may hold anything the handler held.
		m.logCall(r.Context(), slog.LevelError, call, "handler panicked", "panic", panicked.value, "stack", string(panicked.stack))
		writeJSON(w, http.StatusInternalServerError, &Response{Error: &Error{Message: panicMessage}})
		return
	}
	if err != nil {
		m.logCall(r.Context(), slog.LevelInfo, call, "handler reported an error", "error", err)
		resp = orNew(resp)
		resp.Error = ErrorFor(err)
	}
	resp = orNew(resp)
	body, bad, err := m.encodeAnswer(resp)
	if len(bad) > 0 {
		cerr := &ContractError{Document: "response", Violations: bad}
		m.logCall(r.Context(), slog.LevelError, call, "handler answered what the gateway refuses", "error", cerr)
		writeJSON(w, http.StatusInternalServerError, refusedAnswer(resp, cerr))
		return
	}
	m.logCall(r.Context(), slog.LevelDebug, call, "handled callback")
	writeBody(w, http.StatusOK, body, err)
}

// encodeAnswer encodes a handler's answer as it is sent, newline included,
// unless it breaks what the gateway reads an answer by: then bad says how.
// The limits are on the bytes the gateway reads, so they are checked on
// the encoding; the rest on the Response's fields (checkAnswer).
func (m *Mux) encodeAnswer(resp *Response) (body []byte, bad []Violation, err error) {
	if bad = checkAnswer(resp); len(bad) > 0 {
		return nil, bad, nil
	}
	if body, err = encodeResponse(resp); err != nil {
		return nil, nil, err
	}
	body = append(body, '\n')
	if v := checkLimits(body, m.maxAnswer); v != nil {
		return nil, []Violation{*v}, nil
	}
	return body, nil, nil
}

// refusedAnswer is the 500 sent in place of a handler's answer the gateway
// would refuse whole: sent with 200, it was an InvalidResponse retried for
// ever, with nothing in the handler's log above debug. A 500 is retried
// too, but the gateway's Event names the violations.
func refusedAnswer(resp *Response, cerr *ContractError) *Response {
	msg := "the handler's answer was not sent: its " + cerr.Error()
	if resp.Error != nil && resp.Error.Message != "" {
		msg += "; the handler reported: " + resp.Error.Message
	}
	return &Response{Error: &Error{Message: msg}}
}

// callAttrs are a call's attributes on its log records, as its request
// arrived.
type callAttrs struct {
	operator, callback, delivery string
	event                        Event
	namespace, name              string
	attempt                      int
}

func callOf(req *Request) callAttrs {
	c := callAttrs{operator: req.Operator, callback: req.Callback, delivery: req.UID, event: req.Event, attempt: req.Attempt}
	if req.Object != nil {
		c.namespace, c.name = req.Object.GetNamespace(), req.Object.GetName()
	}
	return c
}

func (c callAttrs) object() string {
	if c.namespace != "" {
		return c.namespace + "/" + c.name
	}
	return c.name
}

// logCall logs a record about a call with the call's attributes, naming
// its caller's line as its source, as slog's own methods would. slog's
// handlers keep or drop a record by its level alone, and Logger.With
// formats its attributes at once: for them the record is made only when
// it is kept, with the attributes in it (the same output), where every
// callback used to format six attributes for a debug record the usual
// level drops. Any other handler is given the attributes as a logger's
// (WithAttrs), since it may decide on them.
func (m *Mux) logCall(ctx context.Context, level slog.Level, call callAttrs, msg string, args ...any) {
	h := m.log.Handler()
	own := false
	switch h.(type) {
	case *slog.JSONHandler, *slog.TextHandler:
		own = true
	}
	if (own || h == slog.DiscardHandler) && !h.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("operator", call.operator), slog.String("callback", call.callback),
		slog.Any("event", call.event), slog.String("object", call.object()), slog.Int("attempt", call.attempt),
		slog.String("delivery", call.delivery)}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // past Callers and logCall
	r := slog.NewRecord(time.Now(), level, msg, pcs[0])
	if own {
		r.AddAttrs(attrs...)
	} else if h = h.WithAttrs(attrs); !h.Enabled(ctx, level) {
		return
	}
	r.Add(args...)
	_ = h.Handle(ctx, r)
}

// readRequest reads, verifies and decodes the body; on failure it returns
// the status code to answer.
func (m *Mux) readRequest(w http.ResponseWriter, r *http.Request) (*Request, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.maxBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is over %d bytes", tooLarge.Limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	if m.verifier != nil {
		if err := m.verifier.Verify(r.Header, body); err != nil {
			return nil, http.StatusUnauthorized, fmt.Errorf("signature refused: %w", err)
		}
	}
	// Checking first turns a missing object or a wrong type into a
	// message with its JSON path instead of a nil dereference later. The
	// checks are schema/request.json's rules in Go (requestcheck.go): the
	// schema validator cost a fifth of serving a request.
	doc, err := parseRequest(body)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	req, err := requestOf(doc)
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("decode request: %w", err)
	}
	return req, 0, nil
}

// canonicalTimestampHeader is HeaderWebhookTimestamp as http.Header keys
// it: Get canonicalizes a key into a new string unless it already is.
const canonicalTimestampHeader = "Webhook-Timestamp"

// handlerDeadline is when the handler's context ends, on this process's
// clock. With the clocks in step (the request arrived within the second
// webhook-timestamp names, or the next: the timestamp is in whole seconds)
// it is the deadline as sent, when the gateway stops waiting. On a clock
// out of step the deadline would be read wrong: one 15 s ahead of the
// gateway's ended every call of a 10 s timeout at once, and the gateway
// retried it for ever. There it is the time the gateway gave the call,
// deadline − webhook-timestamp, less the second the timestamp may have
// rounded away, from the request's arrival: up to a second early, never
// after the gateway stops waiting (but for the network's delay), so a
// retry of a call timed out does not meet the call still running. Without
// a timestamp the deadline is all there is; zero means none.
func handlerDeadline(h http.Header, req *Request, arrived time.Time) time.Time {
	if req.Deadline.IsZero() {
		return time.Time{}
	}
	ts := h.Get(canonicalTimestampHeader)
	if ts == "" { // checked first: a failed ParseInt allocates its error
		return req.Deadline
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return req.Deadline
	}
	sent := time.Unix(secs, 0)
	if skew := arrived.Sub(sent); skew >= 0 && skew < 2*time.Second {
		return req.Deadline
	}
	given := req.Deadline.Sub(sent)
	if given > time.Second {
		given -= time.Second
	}
	return arrived.Add(given)
}

// call runs fn until deadline, when there is one: past it the gateway no
// longer waits for the answer. A panic becomes a *panicError.
func (m *Mux) call(ctx context.Context, fn HandlerFunc, req *Request, deadline time.Time) (resp *Response, err error) {
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			resp, err = nil, &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return fn(ctx, req)
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.value) }

// panicMessage is the whole answer to a panic: what it was is in the log.
const panicMessage = "the handler panicked; its log has the panic and the stack"

// refuse answers a request the Mux could not hand to a handler. Only a
// malformed request is permanent: resending it cannot change the answer,
// while the other refusals end once the handler or the gateway is
// configured right.
func refuse(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, &Response{Error: &Error{Message: msg, Permanent: status == http.StatusBadRequest}})
}

func writeJSON(w http.ResponseWriter, status int, resp *Response) {
	body, err := encodeResponse(resp)
	if err == nil {
		body = append(body, '\n')
	}
	writeBody(w, status, body, err)
}

// writeBody writes an encoded answer, ending in a newline, or, when its
// encoding failed with encErr, a 500 saying why.
func writeBody(w http.ResponseWriter, status int, body []byte, encErr error) {
	if encErr != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(&Response{Error: &Error{Message: fmt.Sprintf("encode response: %v", encErr)}})
		body = append(body, '\n')
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
