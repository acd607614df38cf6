package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"time"

	"github.com/cenkalti/backoff/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/watch"
)

// While the API server cannot be reached, or answers that it cannot serve
// now, a list or watch retries on its own schedule instead of failing to
// the reflector: client-go's reflector waits 0.8 s doubling to 30 s, with
// jitter up to as much again, and its informers take no other schedule, so
// a cache came back up to a minute after the API server did
// (docs/reliability.md, "Process and cluster faults").
const (
	reachFirstRetry = 200 * time.Millisecond
	reachMaxRetry   = 4 * time.Second
	// After this long the failure goes back to the reflector, which calls
	// again after its own backoff: 0.8-1.6 s, as that resets when it last
	// reset two minutes before.
	reachGiveUp = 2*time.Minute + 10*time.Second
	// reachMaxServerDelay caps a server's Retry-After between the
	// gateway's tries (the informers' requests make none of client-go's
	// own, which wait it uncapped): a proxy asking for an hour must not
	// park an informer.
	reachMaxServerDelay = 30 * time.Second
)

// reachBackoff is 0.2 s doubling to 4 s, each wait ±50 %, for at most
// reachGiveUp; clock nil is the real one.
func reachBackoff(clock backoff.Clock) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = reachFirstRetry
	b.Multiplier = 2
	b.MaxInterval = reachMaxRetry
	b.RandomizationFactor = 0.5 // many informers must not come back in step
	b.MaxElapsedTime = reachGiveUp
	if clock != nil {
		b.Clock = clock
	}
	b.Reset()
	return b
}

// unreachable reports whether err says that the API server could not be
// reached (no connection, a connection lost, a network timeout) or
// answered that it cannot serve now (429, 502, 503, 504). Anything else
// (a refusal, a 500 such as a failing conversion webhook, an answer the
// client cannot read, a resource version the server has not caught up
// with) goes back to the reflector, which relists or backs off as it
// should for it.
func unreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		switch {
		case apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge),
			apierrors.IsResourceExpired(err), apierrors.IsGone(err):
			return false // the reflector reads again from another revision
		}
		switch status.Status().Code {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return connectionFailed(err)
}

// connectionFailed: no connection could be made, or it broke or timed out.
// An API server's answer is none, whatever its message says (an
// aggregated API it could not reach).
func connectionFailed(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true // refused, no route, no such host, no answer in time
	}
	// client-go wraps a body cut off mid-read with %w, which
	// IsProbableEOF does not look through.
	return errors.Is(err, errNoWatch) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsHTTP2ConnectionLost(err) ||
		utilnet.IsProbableEOF(err) || utilnet.IsTimeout(err)
}

// errNoWatch: a watch call answered an empty watch, as client-go's
// Request.Watch does when the connection was lost or timed out on each of
// its tries (without saying which). Taken as it is, the reflector would
// see a watch that ends at once, and health a success.
var errNoWatch = errors.New("watch not opened: the connection to the API server was lost or timed out")

var emptyWatchType = reflect.TypeOf(watch.NewEmptyWatch())

// opened is w and err of a watch call, an empty watch made errNoWatch
// unless ctx ended (the informer stops).
func opened(ctx context.Context, w watch.Interface, err error) (watch.Interface, error) {
	if err == nil && reflect.TypeOf(w) == emptyWatchType && ctx.Err() == nil {
		return nil, errNoWatch
	}
	return w, err
}

// watchListUnreachable is unreachable for a watch that streams the
// initial list (sendInitialEvents): only a failed connection (the
// reflector would wait its own backoff for it) and a 429 (a list would be
// throttled as well; API Priority and Fairness throttles most when
// informers list) are retried, since the reflector answers any other
// error by falling back to a list.
func watchListUnreachable(err error) bool { return passing(err) && unreachable(err) }

// passing: a lost connection or a throttled request, which a next try
// often cures.
func passing(err error) bool { return connectionFailed(err) || apierrors.IsTooManyRequests(err) }

// nextWait is b's next wait after err, or at least the delay the server
// asked for, up to reachMaxServerDelay; backoff.Stop when b gives up.
func nextWait(b backoff.BackOff, err error) time.Duration {
	wait := b.NextBackOff()
	if wait == backoff.Stop {
		return wait
	}
	if s, ok := apierrors.SuggestsClientDelay(err); ok {
		wait = max(wait, min(time.Duration(s)*time.Second, reachMaxServerDelay))
	}
	return wait
}

// untilAnswered calls call until it succeeds, fails with an error retry
// does not accept, b gives up, or ctx ends; observe sees every outcome but
// a first lost connection or 429 that is tried again: a connection lost
// once (an API server rotating connections) or a request throttled once
// (API Priority and Fairness, client-go retried those quietly) that the
// next try cures is no failure to report, and would make Ready flap. (A
// first 5xx is reported: the server answered that it cannot serve.) A
// server's suggested delay (Retry-After) is waited at least, up to
// reachMaxServerDelay.
func untilAnswered[T any](ctx context.Context, b backoff.BackOff, retry func(error) bool,
	observe func(error), call func() (T, error)) (T, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for tries := 1; ; tries++ {
		out, err := call()
		again := err != nil && ctx.Err() == nil && retry(err)
		quiet := again && tries == 1 && passing(err)
		if !quiet {
			observe(err)
		}
		if !again {
			return out, err
		}
		wait := nextWait(b, err)
		if wait == backoff.Stop {
			if quiet {
				observe(err) // not tried again after all
			}
			return out, err
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-timer.C:
		}
	}
}
