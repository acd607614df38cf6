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
)

// Reasons of the failures Call returns, fit for Kubernetes Event reasons.
const (
	ReasonHandlerError       = "HandlerError"       // 2xx with an error object
	ReasonInvalidResponse    = "InvalidResponse"    // 2xx that is not valid JSON, breaks the schema or is too large
	ReasonHandlerUnavailable = "HandlerUnavailable" // 408, 425, 429, 5xx
	ReasonHandlerRejected    = "HandlerRejected"    // any other 4xx
	ReasonHandlerRedirected  = "HandlerRedirected"  // 3xx, never followed
	ReasonHandlerTimeout     = "HandlerTimeout"     // no full answer within the timeout
	ReasonHandlerUnreachable = "HandlerUnreachable" // connection or TLS failure
	ReasonCanceled           = "Canceled"           // the caller's context was canceled
	ReasonInvalidEndpoint    = "InvalidEndpoint"    // the Endpoint cannot be called
	ReasonInvalidRequest     = "InvalidRequest"     // the Request cannot be sent
)

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
		snippet := readSnippet(resp.Body)
		log.DebugContext(ctx, "handler answered", "status", code, "body", snippet)
		return nil, statusFailure(where, resp, snippet, c.now())
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, transportFailure(ctx, where, timeout, err)
	}
	log.DebugContext(ctx, "handler answered", "status", code, "bytes", len(body), "body", truncate(body))
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

// statusFailure classifies a non-2xx answer. 408, 425 and 429 say "not now"
// as plainly as a 5xx does, so they are retried; any other 4xx says the
// request itself is wrong, and sending it again would not help.
func statusFailure(where string, resp *http.Response, snippet string, now time.Time) *failure.Error {
	code := resp.StatusCode
	switch {
	case code >= 300 && code <= 399:
		return failure.Permanentf(ReasonHandlerRedirected,
			"call %s: HTTP %d redirect to %s; redirects are not followed, point the handler URL at the final address",
			where, code, redirectTarget(resp))
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		return failure.Temporaryf(ReasonHandlerUnavailable, "call %s: HTTP %d%s", where, code, quoteSnippet(snippet)).
			WithRetryAfter(parseRetryAfter(resp.Header.Get("Retry-After"), now))
	default:
		return failure.Permanentf(ReasonHandlerRejected, "call %s: HTTP %d%s", where, code, quoteSnippet(snippet))
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

// readSnippet reads the start of a body that will not be decoded, and
// drains a little more of it so the connection can be reused.
func readSnippet(body io.Reader) string {
	head, _ := io.ReadAll(io.LimitReader(body, snippetBytes+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
	return truncate(head)
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
