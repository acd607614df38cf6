package main

import (
	"errors"
	"strconv"

	"github.com/spf13/pflag"
)

// positive is an integer flag that refuses zero and negative values as it
// is parsed: the engine and the call client would otherwise put their
// defaults in their place, silently.
type positive[T int | int64] struct{ p *T }

func positiveVar[T int | int64](f *pflag.FlagSet, p *T, name string, value T, usage string) {
	*p = value
	f.Var(positive[T]{p}, name, usage)
}

func (v positive[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return errors.New("want a positive integer")
	}
	if n <= 0 || int64(T(n)) != n {
		return errors.New("want a positive integer")
	}
	*v.p = T(n)
	return nil
}

func (v positive[T]) String() string { return strconv.FormatInt(int64(*v.p), 10) }

func (positive[T]) Type() string { return "int" }
