package poll

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that keeps what Fatalf said instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	r := &recorder{TB: t}
	Eventually(r, 5*time.Second, "the third poll", func(context.Context) (bool, string, error) {
		calls++
		if calls < 3 {
			return false, "", errors.New("not yet")
		}
		return true, "", nil
	})
	if r.failed != "" || calls != 3 {
		t.Errorf("failed %q after %d polls, want success on the third", r.failed, calls)
	}
}

func TestEventuallyFailsWhenTheConditionNeverHolds(t *testing.T) {
	r := &recorder{TB: t}
	Eventually(r, 300*time.Millisecond, "nothing", func(context.Context) (bool, string, error) { return false, "still no", nil })
	if !strings.Contains(r.failed, "waiting for nothing; last seen: still no") {
		t.Errorf("a condition that never holds failed the test with %q, want the last state seen", r.failed)
	}
}
