package call

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/opgate/opgate/callbacks"
	"github.com/opgate/opgate/gateway/failure"
	"github.com/opgate/opgate/internal/refusal"
)

// Reasons of the failures Call returns, fit for Kubernetes Event reasons.
const (
	ReasonHandlerError       = "HandlerError"       // 2xx with an error object
	ReasonInvalidResponse    = "InvalidResponse"    // 2xx that is not valid JSON, breaks the schema or is too large
	ReasonHandlerUnavailable = "HandlerUnavailable" // 408, 425, 429, 5xx
	ReasonHandlerRejected    = "HandlerRejected"    // 400, 422 and the 4xx without a reason of their own
	// The refusals a configuration change cures (a credential rotation, a
	// handler rollout, a route): temporary unless the body says otherwise.
	ReasonHandlerUnauthorized     = "HandlerUnauthorized"     // 401, 403
	ReasonHandlerNotFound         = "HandlerNotFound"         // 404, 410
	ReasonHandlerMethodNotAllowed = "HandlerMethodNotAllowed" // 405: the path routes elsewhere than a POST handler
	ReasonHandlerConflict         = "HandlerConflict"         // 409
	ReasonHandlerRedirected       = "HandlerRedirected"       // 3xx, never followed
	ReasonHandlerTimeout          = "HandlerTimeout"          // no full answer within the timeout
	ReasonHandlerUnreachable      = "HandlerUnreachable"      // connection or TLS failure
	ReasonCanceled                = "Canceled"                // the caller's context was canceled
	ReasonInvalidEndpoint         = "InvalidEndpoint"         // the Endpoint cannot be called
	ReasonInvalidRequest          = "InvalidRequest"          // the Request cannot be sent
)

// errorBodyBytes bounds the part of a non-2xx body read to find the
// handler's own error object; a larger body is judged by its status code.
const errorBodyBytes = 64 << 10

// snippetBytes bounds the part of a refused body quoted in errors and logs:
// enough to show a framework's error page title, not enough to flood an
// Event or a log line.
const snippetBytes = 512

// drainBytes is how much of an unused body is read before closing it, so
// that the keep-alive connection can serve the next call; a larger rest is
// cheaper to drop with the connection.
const drainBytes = 64 << 10

// readAnswer classifies a handler's HTTP answer (docs/contract.md, "Errors and retries").
func (c *Client) readAnswer(ctx context.Context, log *slog.Logger, where string, timeout time.Duration, resp *http.Response) (*callbacks.Response, error) {
	code := resp.StatusCode
	if code < 200 || code > 299 {
		body := readErrorBody(resp.Body)
		if log.Enabled(ctx, slog.LevelDebug) {
			log.DebugContext(ctx, "handler answered", "status", code, "body", truncate(body))
		}
		return nil, statusFailure(where, resp, body, c.now())
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, transportFailure(ctx, where, timeout, err)
	}
	if log.Enabled(ctx, slog.LevelDebug) { // truncate copies the body's start
		log.DebugContext(ctx, "handler answered", "status", code, "bytes", len(body), "body", truncate(body))
	}
	if int64(len(body)) > c.maxBody {
		return nil, failure.Temporaryf(ReasonInvalidResponse,
			"call %s: HTTP %d answer is larger than %d bytes; nothing of it is applied", where, code, c.maxBody)
	}
	out, err := callbacks.DecodeResponse(body)
	if err != nil {
		return nil, failure.Temporaryf(ReasonInvalidResponse,
			"call %s: HTTP %d answer is not usable, nothing of it is applied: %w", where, code, err)
	}
	if out.Error == nil {
		return out, nil
	}
	// DecodeResponse has checked that retryAfter parses.
	retryAfter, _ := out.Error.RetryAfterDuration()
	if out.Error.Permanent {
		return out, failure.Permanentf(ReasonHandlerError,
			"call %s: handler reported a permanent error: %s", where, out.Error.Message)
	}
	return out, failure.Temporaryf(ReasonHandlerError,
		"call %s: handler reported an error: %s", where, out.Error.Message).WithRetryAfter(retryAfter)
}

// statusFailure classifies a non-2xx answer (docs/contract.md, "Errors and
// retries"): permanent as refusal.Permanent says (error.permanent in a JSON
// body, else 400 and 422), callbackstest's rule too; any other refusal is
// retried with backoff like a 5xx.
func statusFailure(where string, resp *http.Response, body []byte, now time.Time) *failure.Error {
	code := resp.StatusCode
	if code >= 300 && code <= 399 {
		// Never followed (it would resend the signed body and the token
		// elsewhere), but retried: like a 404, a URL fix or the end of a
		// handler's migration cures it, and a permanent failure would park
		// every object until someone touched it.
		return failure.Temporaryf(ReasonHandlerRedirected,
			"call %s: HTTP %d redirect to %s; redirects are not followed, point the handler URL at the final address",
			where, code, redirectTarget(resp))
	}
	reason := statusReason(code)
	said := refusal.Decode(body)
	if refusal.Permanent(code, said) {
		return failure.Permanentf(reason, "call %s: HTTP %d%s", where, code, quoteSnippet(truncate(body)))
	}
	retryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), now)
	if retryAfter == 0 {
		retryAfter = said.RetryAfterDuration()
	}
	return failure.Temporaryf(reason, "call %s: HTTP %d%s", where, code, quoteSnippet(truncate(body))).
		WithRetryAfter(retryAfter)
}

// statusReason names what a non-2xx, non-3xx status code says.
func statusReason(code int) string {
	switch {
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return ReasonHandlerUnauthorized
	case code == http.StatusNotFound, code == http.StatusGone:
		return ReasonHandlerNotFound
	case code == http.StatusMethodNotAllowed:
		return ReasonHandlerMethodNotAllowed
	case code == http.StatusConflict:
		return ReasonHandlerConflict
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		return ReasonHandlerUnavailable
	default:
		return ReasonHandlerRejected
	}
}

// transportFailure classifies an error of sending the request or reading
// the answer. parent is the caller's context, before the call's timeout was
// added to it.
func transportFailure(parent context.Context, where string, timeout time.Duration, err error) *failure.Error {
	// url.Error repeats the full URL, query secrets included.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		return failure.Temporaryf(ReasonCanceled, "call %s: canceled: %w", where, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return failure.Temporaryf(ReasonHandlerTimeout, "call %s: no full answer within %s: %w", where, timeout, err)
	default:
		return failure.Temporaryf(ReasonHandlerUnreachable, "call %s: %w", where, err)
	}
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP-date
// (RFC 9110 §10.2.3). Zero when absent, invalid or in the past, which lets
// the backoff decide.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		const maxSecs = math.MaxInt64 / int64(time.Second)
		return time.Duration(max(0, min(secs, maxSecs))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

func redirectTarget(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return "nowhere (no valid Location header)"
	}
	return displayURL(loc)
}

// readErrorBody reads the start of a non-2xx body, and drains a little
// more of it so the connection can be reused.
func readErrorBody(body io.Reader) []byte {
	head, _ := io.ReadAll(io.LimitReader(body, errorBodyBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
	return head
}

// truncate returns at most snippetBytes of b as valid UTF-8, marking a cut.
func truncate(b []byte) string {
	if len(b) <= snippetBytes {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	cut := b[:snippetBytes]
	// Do not split a rune: back up to its first byte.
	for i := 0; i < utf8.UTFMax && len(cut) > 0 && !utf8.RuneStart(b[len(cut)]); i++ {
		cut = cut[:len(cut)-1]
	}
	return strings.ToValidUTF8(string(cut), "\uFFFD") + "…"
}

// quoteSnippet puts a body into a one-line error message.
func quoteSnippet(snippet string) string {
	snippet = strings.TrimSpace(snippet)
	if snippet == "" {
		return ""
	}
	return ": " + strconv.Quote(snippet)
}
