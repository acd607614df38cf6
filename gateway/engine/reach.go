package engine

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// While the API server cannot answer (down, restarting, overloaded), a
// list or watch retries on its own schedule, capped at reachMaxRetry,
// instead of failing to the reflector: client-go's reflector waits 0.8 s
// doubling to 30 s with jitter up to as much again, and its informers
// take no other schedule, so a cache came back up to a minute after the
// API server did (docs/reliability.md).
const (
	reachFirstRetry = 200 * time.Millisecond
	reachMaxRetry   = 4 * time.Second
)

func reachBackoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = reachFirstRetry
	b.MaxInterval = reachMaxRetry
	b.RandomizationFactor = 0.5 // many informers must not come back in step
	b.MaxElapsedTime = 0        // until the API server answers or ctx ends
	b.Reset()
	return b
}

// unreachable reports whether err says that the API server could not
// answer now rather than that the request was refused: connection
// errors, 5xx and 429. Refusals (403, 404, 410 …) go back to the
// reflector, which relists or backs off as it should for them.
func unreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code >= http.StatusInternalServerError || code == http.StatusTooManyRequests
	}
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// untilAnswered calls call until it succeeds, fails with anything but
// unreachable, or ctx ends (then it returns ctx's error); observe sees
// every outcome.
func untilAnswered[T any](ctx context.Context, b backoff.BackOff, observe func(error), call func() (T, error)) (T, error) {
	return backoff.RetryWithData(func() (T, error) {
		out, err := call()
		observe(err)
		if err != nil && !unreachable(err) {
			return out, backoff.Permanent(err)
		}
		return out, err
	}, backoff.WithContext(b, ctx))
}
