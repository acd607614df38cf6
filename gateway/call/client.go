// Package call is the gateway's HTTP client for handlers: it sends one
// CallbackRequest with its auth and signature headers, enforces the timeout
// and the size limit, and classifies the answer once, here at the edge, as
// success, temporary or permanent failure (docs/contract.md, "Errors and retries"). It never retries;
// the worker decides that from the class.
package call

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/internal/version"
)

// Defaults of Config.
const (
	DefaultMaxResponseBytes = callbacks.DefaultMaxResponseBytes // shared with the Go handler toolkit's Mux
	DefaultTimeout          = 10 * time.Second
)

// Config configures a Client; zero fields take their defaults.
type Config struct {
	// MaxResponseBytes bounds a handler's answer; a larger one is refused
	// whole, never decoded truncated. DefaultMaxResponseBytes when zero.
	MaxResponseBytes int64
	// DefaultTimeout applies to endpoints without a Timeout.
	DefaultTimeout time.Duration
	// Clock stamps deadlines, webhook-timestamp and Retry-After dates;
	// time.Now when nil.
	Clock func() time.Time
	// Logger receives debug records of each call; discarded when nil.
	Logger *slog.Logger
	// Transport, when set, carries every call and Endpoint.TLS is ignored;
	// meant for tests. When nil the client keeps pooled keep-alive
	// transports, one per TLS configuration.
	Transport http.RoundTripper
}

// Endpoint is where and how to call one handler. The caller resolves
// Services, Secrets, caBundle and client certificates into it (see
// TLSConfig).
type Endpoint struct {
	URL string
	// Timeout bounds the whole call, body included; Config.DefaultTimeout
	// when zero.
	Timeout time.Duration
	// HMACSecret signs each request the Standard Webhooks way when set;
	// raw bytes or "whsec_" and base64.
	HMACSecret []byte
	// BearerToken is sent as "Authorization: Bearer <token>" when set.
	BearerToken string
	// TLS is used for https URLs; nil means the system roots. Reuse one
	// *tls.Config per endpoint: the client pools connections per pointer.
	TLS *tls.Config
}

// Client calls handlers. It is safe for concurrent use.
type Client struct {
	maxBody        int64
	defaultTimeout time.Duration
	now            func() time.Time
	log            *slog.Logger
	transports     *transportPool // nil when Config.Transport is set
	transport      http.RoundTripper
}

// New validates and defaults cfg.
func New(cfg Config) (*Client, error) {
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("call client: MaxResponseBytes %d is negative", cfg.MaxResponseBytes)
	}
	if cfg.DefaultTimeout < 0 {
		return nil, fmt.Errorf("call client: DefaultTimeout %s is negative", cfg.DefaultTimeout)
	}
	c := &Client{
		maxBody:        cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		defaultTimeout: cmp.Or(cfg.DefaultTimeout, DefaultTimeout),
		now:            cfg.Clock,
		log:            cfg.Logger,
		transport:      cfg.Transport,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.transport == nil {
		c.transports = newTransportPool()
	}
	return c, nil
}

// CloseIdleConnections closes the pooled connections no call is using, as
// on shutdown.
func (c *Client) CloseIdleConnections() {
	if c.transports != nil {
		c.transports.closeIdle()
	}
}

// ForgetTLS drops the pooled transport of a TLS configuration no endpoint
// uses any more, as after a client certificate was rotated: its idle
// connections close, calls in flight on it finish, and the next call with
// the new configuration dials afresh.
func (c *Client) ForgetTLS(tlsConfig *tls.Config) {
	if c.transports != nil && tlsConfig != nil {
		c.transports.forget(tlsConfig)
	}
}

// Call POSTs req to the endpoint and returns the decoded answer. The error,
// when not nil, is a *failure.Error whose message names the URL (without
// its query) and what went wrong. A handler-reported error (HandlerError)
// comes with the decoded response, whose status and events the engine still
// applies (never its children); every other failure comes without one.
//
// req is not modified: the request sent is a copy with Deadline set to when
// the call times out, and APIVersion and Kind filled in when empty.
func (c *Client) Call(ctx context.Context, ep Endpoint, req *callbacks.Request) (*callbacks.Response, error) {
	return c.CallWithChildren(ctx, ep, req, nil)
}

// CallWithChildren is Call with the request's children given as children
// (when not nil) in place of req.Children.
func (c *Client) CallWithChildren(ctx context.Context, ep Endpoint, req *callbacks.Request, children Children) (*callbacks.Response, error) {
	target, err := parseEndpointURL(ep.URL)
	if err != nil {
		return nil, failure.Permanentf(ReasonInvalidEndpoint, "call %s: %w", safeURL(ep.URL), err)
	}
	where := displayURL(target)
	if ep.Timeout < 0 {
		return nil, failure.Permanentf(ReasonInvalidEndpoint, "call %s: timeout %s is negative", where, ep.Timeout)
	}
	if req == nil || req.UID == "" {
		return nil, failure.Permanentf(ReasonInvalidRequest, "call %s: request without uid", where)
	}
	timeout := cmp.Or(ep.Timeout, c.defaultTimeout)
	now := c.now()

	sent := *req
	sent.APIVersion = cmp.Or(sent.APIVersion, callbacks.APIVersion)
	sent.Kind = cmp.Or(sent.Kind, callbacks.RequestKind)
	sent.Deadline = now.Add(timeout).UTC()
	if d, ok := ctx.Deadline(); ok && d.Before(sent.Deadline) {
		sent.Deadline = d.UTC()
	}
	body, err := encodeRequest(&sent, children)
	if err != nil {
		return nil, failure.Permanentf(ReasonInvalidRequest, "call %s: encode request: %w", where, err)
	}

	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(callCtx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return nil, failure.Permanentf(ReasonInvalidEndpoint, "call %s: %w", where, err)
	}
	if err := setHeaders(httpReq.Header, ep, sent.UID, now, body); err != nil {
		return nil, failure.Permanentf(ReasonInvalidEndpoint, "call %s: HMAC secret: %w", where, err)
	}

	// Every record here is a debug one: without debug logging, no logger
	// with the call's attributes is built for each call.
	log := c.log
	if log.Enabled(ctx, slog.LevelDebug) {
		log = c.log.With("url", where, "delivery", sent.UID, "operator", sent.Operator,
			"callback", sent.Callback, "attempt", sent.Attempt)
		log.DebugContext(ctx, "calling handler", "event", sent.Event, "requestBytes", len(body), "timeout", timeout)
	}

	client := &http.Client{
		Transport: c.roundTripper(ep.TLS),
		// A redirect is a misconfigured URL; following it would resend the
		// signed body and the bearer token to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(httpReq)
	if err != nil {
		ferr := transportFailure(ctx, where, timeout, err)
		log.DebugContext(ctx, "handler call failed", "reason", ferr.Reason, "error", ferr.Err)
		return nil, ferr
	}
	defer resp.Body.Close()
	return c.readAnswer(ctx, log, where, timeout, resp)
}

func (c *Client) roundTripper(tlsConfig *tls.Config) http.RoundTripper {
	if c.transport != nil {
		return c.transport
	}
	return c.transports.get(tlsConfig)
}

func setHeaders(h http.Header, ep Endpoint, uid string, now time.Time, body []byte) error {
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", version.UserAgent())
	// The same uid on every retry lets the handler deduplicate.
	h.Set(callbacks.HeaderIdempotencyKey, uid)
	h.Set(callbacks.HeaderWebhookID, uid)
	h.Set(callbacks.HeaderWebhookTimestamp, callbacks.FormatTimestamp(now))
	if len(ep.HMACSecret) > 0 {
		sig, err := callbacks.Sign(ep.HMACSecret, uid, now, body)
		if err != nil {
			return err
		}
		h.Set(callbacks.HeaderWebhookSignature, sig)
	}
	if ep.BearerToken != "" {
		h.Set("Authorization", "Bearer "+ep.BearerToken)
	}
	return nil
}

func parseEndpointURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the whole URL in its error; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("URL has no host")
	}
	return u, nil
}

// displayURL is the URL as errors and logs show it: without user info,
// query or fragment, which may carry secrets.
func displayURL(u *url.URL) string {
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return shown.String()
}

// safeURL shows an unparseable URL as far as it is safe: without query,
// fragment or user info.
func safeURL(raw string) string {
	raw, _, _ = strings.Cut(raw, "?")
	raw, _, _ = strings.Cut(raw, "#")
	if at := strings.LastIndexByte(raw, '@'); at >= 0 {
		start := 0
		if i := strings.Index(raw, "//"); i >= 0 && i < at {
			start = i + 2
		}
		raw = raw[:start] + "…" + raw[at:]
	}
	return raw
}
