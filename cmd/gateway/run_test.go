package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/opgate/opgate/gateway/engine"
	"github.com/opgate/opgate/gateway/server"
)

func TestParseRecordRef(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "", want: "/"},
		{in: "ops/opgate-gateway", want: "ops/opgate-gateway"},
		{in: "opgate-gateway", wantErr: true},
		{in: "/name", wantErr: true},
		{in: "ns/", wantErr: true},
		{in: "a/b/c", wantErr: true},
	} {
		got, err := parseRecordRef(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseRecordRef(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("parseRecordRef(%q) = %q, want %q", tt.in, got.String(), tt.want)
		}
	}
}

func TestUIFlagTurnsTheWebViewOnAndOff(t *testing.T) {
	for _, tt := range []struct {
		ui   bool
		want int
	}{{true, http.StatusOK}, {false, http.StatusNotFound}} {
		o := runOptions{ui: tt.ui}
		routes, err := o.opsRoutes(prometheus.NewRegistry(), nil, func() []engine.OperatorView { return nil }, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		server.NewRouter(routes).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
		if rec.Code != tt.want {
			t.Errorf("--ui=%v: GET /ui/ answered %d, want %d", tt.ui, rec.Code, tt.want)
		}
	}
}

// --workers and --max-response-bytes of zero or less are refused as the
// flags are parsed, not replaced by the defaults.
func TestRunRefusesNonPositiveWorkersAndResponseLimit(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--workers", "0"}, `invalid argument "0" for "--workers" flag: want a positive integer`},
		{[]string{"--workers", "-3"}, `invalid argument "-3" for "--workers" flag: want a positive integer`},
		{[]string{"--workers", "many"}, `invalid argument "many" for "--workers" flag: want a positive integer`},
		{[]string{"--max-response-bytes", "0"}, `invalid argument "0" for "--max-response-bytes" flag: want a positive integer`},
		{[]string{"--workers", "8", "--max-response-bytes", "1048576"}, ""},
	}
	for _, tt := range tests {
		var want []string
		if tt.wantErr == "" {
			want = []string{tt.args[1], tt.args[3]}
		}
		checkRunFlags(t, tt.args, tt.wantErr, []string{"workers", "max-response-bytes"}, want)
	}
}

// checkRunFlags parses args as `gateway run` does: the error must be
// wantErr, and without one the flags named must read want.
func checkRunFlags(t *testing.T, args []string, wantErr string, flags, want []string) {
	t.Helper()
	t.Run(strings.Join(args, " "), func(t *testing.T) {
		cmd := newRunCommand()
		err := cmd.ParseFlags(args)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("error = %v, want none", err)
		case wantErr != "" && (err == nil || err.Error() != wantErr):
			t.Fatalf("error = %v, want %q", err, wantErr)
		case wantErr == "":
			var got []string
			for _, f := range flags {
				got = append(got, cmd.Flag(f).Value.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("parsed %v, want %v", got, want)
			}
		}
	})
}

// --kube-api-qps 0 and --kube-api-burst 0 are refused as the flags are
// parsed: client-go would put its defaults (5 queries a second, a burst of
// 10) in their place, silently. A negative QPS is no limit; a negative
// burst with a limit on would refuse every request, so it is refused too;
// and so is a QPS below one query a minute, with which the gateway would
// wait for ages between requests once its burst is spent.
func TestRunRefusesAZeroOrTooLowClientRateLimit(t *testing.T) {
	tests := []struct {
		args             []string
		wantErr          string
		wantQPS, wantBur string
	}{
		{[]string{"--kube-api-qps=0"}, `invalid argument "0" for "--kube-api-qps" flag: want at least one query a minute (0.0167), or a negative number for no limit`, "", ""},
		{[]string{"--kube-api-qps=0.0"}, `invalid argument "0.0" for "--kube-api-qps" flag: want at least one query a minute (0.0167), or a negative number for no limit`, "", ""},
		{[]string{"--kube-api-qps=NaN"}, `invalid argument "NaN" for "--kube-api-qps" flag: want at least one query a minute (0.0167), or a negative number for no limit`, "", ""},
		{[]string{"--kube-api-qps=fast"}, `invalid argument "fast" for "--kube-api-qps" flag: want at least one query a minute (0.0167), or a negative number for no limit`, "", ""},
		{[]string{"--kube-api-qps=1e-40"}, `invalid argument "1e-40" for "--kube-api-qps" flag: want at least one query a minute (0.0167), or a negative number for no limit`, "", ""},
		{[]string{"--kube-api-qps=0.0166"}, `invalid argument "0.0166" for "--kube-api-qps" flag: want at least one query a minute (0.0167), or a negative number for no limit`, "", ""},
		{[]string{"--kube-api-qps=0.0167"}, "", "0.0167", "2000"},
		{[]string{"--kube-api-burst=0"}, `invalid argument "0" for "--kube-api-burst" flag: want a positive integer`, "", ""},
		{[]string{"--kube-api-burst=-1"}, `invalid argument "-1" for "--kube-api-burst" flag: want a positive integer`, "", ""},
		{nil, "", "1000", "2000"},
		{[]string{"--kube-api-qps=-1"}, "", "-1", "2000"},
		{[]string{"--kube-api-qps=0.5", "--kube-api-burst=1"}, "", "0.5", "1"},
	}
	for _, tt := range tests {
		var want []string
		if tt.wantErr == "" {
			want = []string{tt.wantQPS, tt.wantBur}
		}
		checkRunFlags(t, tt.args, tt.wantErr, []string{"kube-api-qps", "kube-api-burst"}, want)
	}
}

// A Lease name that is no DNS-1123 subdomain, or a namespace that is no
// DNS-1123 label, is refused by the API server on every attempt to take
// the Lease: the gateway would run, never lead and never act. It refuses
// them as the flags are parsed, naming the flag and the rule. An empty
// namespace is the pod's own.
func TestRunRefusesALeaseTheAPIServerRefuses(t *testing.T) {
	long := strings.Repeat("a", 254)
	nameErr := func(v string) string {
		return fmt.Sprintf(`invalid argument %q for "--leader-election-name" flag: want a Lease name the API server takes: %s`,
			v, strings.Join(validation.IsDNS1123Subdomain(v), "; "))
	}
	namespaceErr := func(v string) string {
		return fmt.Sprintf(`invalid argument %q for "--leader-election-namespace" flag: want a namespace name the API server takes: %s`,
			v, strings.Join(validation.IsDNS1123Label(v), "; "))
	}
	tests := []struct {
		args             []string
		wantErr          string
		wantName, wantNS string
	}{
		{nil, "", "opgate-gateway", ""},
		{[]string{"--leader-election-name=gw.v2", "--leader-election-namespace=leases"}, "", "gw.v2", "leases"},
		{[]string{"--leader-election-namespace="}, "", "opgate-gateway", ""},
		{[]string{"--leader-election-name=Opgate_Gateway"}, nameErr("Opgate_Gateway"), "", ""},
		{[]string{"--leader-election-name="}, nameErr(""), "", ""},
		{[]string{"--leader-election-name=" + long}, nameErr(long), "", ""},
		{[]string{"--leader-election-namespace=Leases"}, namespaceErr("Leases"), "", ""},
		{[]string{"--leader-election-namespace=leases.v2"}, namespaceErr("leases.v2"), "", ""},
		{[]string{"--leader-election-namespace=" + long[:64]}, namespaceErr(long[:64]), "", ""},
	}
	for _, tt := range tests {
		var want []string
		if tt.wantErr == "" {
			want = []string{tt.wantName, tt.wantNS}
		}
		checkRunFlags(t, tt.args, tt.wantErr, []string{"leader-election-name", "leader-election-namespace"}, want)
	}
}

// docs/operations.md's "Flags of `gateway run`" table is the flags'
// reference: every flag of gateway run has a row, and every row names a
// flag that exists.
func TestEveryRunFlagIsInTheOperationsFlagTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Flags of `gateway run`")
	if start < 0 {
		t.Fatal("docs/operations.md has no section \"Flags of `gateway run`\"")
	}
	section, _, _ := strings.Cut(doc[start+1:], "\n## ")
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(line, "| `") {
			continue
		}
		for _, m := range regexp.MustCompile("--([a-z0-9-]+)").FindAllStringSubmatch(cells[1], -1) {
			documented[m[1]] = true
		}
	}
	flags := newRunCommand().Flags()
	flags.VisitAll(func(f *pflag.Flag) {
		if !documented[f.Name] {
			t.Errorf("gateway run --%s (%s) has no row in docs/operations.md's flag table", f.Name, f.Usage)
		}
	})
	for name := range documented {
		if flags.Lookup(name) == nil {
			t.Errorf("docs/operations.md's flag table documents --%s, which gateway run does not have", name)
		}
	}
}
