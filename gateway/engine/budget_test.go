package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPassBudgetBoundsTheWorkAndTakesWhatItTook(t *testing.T) {
	b := &passBudget{left: time.Hour}
	if err := b.spend(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if b.exhausted() || b.left < 59*time.Minute {
		t.Fatalf("left %s after a quick step, want nearly an hour", b.left)
	}

	b = &passBudget{left: 20 * time.Millisecond}
	err := b.spend(context.Background(), func(ctx context.Context) error {
		<-ctx.Done() // work that takes longer than the budget
		return ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) || !b.exhausted() {
		t.Fatalf("err %v, exhausted %v; want the step cut off at the deadline and the budget spent", err, b.exhausted())
	}
	err = b.spend(context.Background(), func(ctx context.Context) error { return ctx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a step on a spent budget got %v, want an expired context", err)
	}
}

func TestRecordContextOutlivesTheCanceledPass(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	ctx, done := recordContext(parent)
	defer done()
	if ctx.Err() != nil {
		t.Fatalf("record context is done (%v) with its parent; it must outlive it to record what succeeded", ctx.Err())
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > recordTimeout {
		t.Errorf("deadline %v (set %v), want within %s", d, ok, recordTimeout)
	}
}
