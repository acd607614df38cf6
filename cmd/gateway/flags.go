package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
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

// rateLimit is the --kube-api-qps flag: at least minQPS, or negative for
// no limit. Zero is refused as it is parsed: client-go would put its
// default of 5 queries a second in its place, silently.
type rateLimit struct{ p *float32 }

// minQPS is one query a minute: below it, a gateway that has spent its
// burst waits minutes (1e-40: for ever) between requests, which no one
// means; a negative value is the way to say "no limit".
const minQPS = 1.0 / 60

func rateLimitVar(f *pflag.FlagSet, p *float32, name string, value float32, usage string) {
	*p = value
	f.Var(rateLimit{p}, name, usage)
}

func (v rateLimit) Set(s string) error {
	n, err := strconv.ParseFloat(s, 32)
	if err != nil || (n >= 0 && n < minQPS) || math.IsNaN(n) {
		return errors.New("want at least one query a minute (0.0167), or a negative number for no limit")
	}
	*v.p = float32(n)
	return nil
}

func (v rateLimit) String() string { return strconv.FormatFloat(float64(*v.p), 'g', -1, 32) }

func (rateLimit) Type() string { return "float32" }

// objectName is a string flag naming a Kubernetes object, refused as it is
// parsed when the API server would refuse the name: a gateway given such a
// Lease would run, never lead and never act. An empty value is taken only
// where it means a default (the pod's own namespace).
type objectName struct {
	p          *string
	what       string
	check      func(string) []string
	emptyIsDef bool
}

// leaseNameVar is a Lease name: a DNS-1123 subdomain.
func leaseNameVar(f *pflag.FlagSet, p *string, name, value, usage string) {
	*p = value
	f.Var(objectName{p: p, what: "Lease name", check: validation.IsDNS1123Subdomain}, name, usage)
}

// namespaceVar is a namespace name (a DNS-1123 label), or empty.
func namespaceVar(f *pflag.FlagSet, p *string, name, value, usage string) {
	*p = value
	f.Var(objectName{p: p, what: "namespace name", check: validation.IsDNS1123Label, emptyIsDef: true}, name, usage)
}

func (v objectName) Set(s string) error {
	if s != "" || !v.emptyIsDef {
		if errs := v.check(s); len(errs) > 0 {
			return fmt.Errorf("want a %s the API server takes: %s", v.what, strings.Join(errs, "; "))
		}
	}
	*v.p = s
	return nil
}

func (v objectName) String() string { return *v.p }

func (objectName) Type() string { return "string" }
