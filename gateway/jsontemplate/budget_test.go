package jsontemplate

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// TestRenderingsThatWouldBuildTooMuchStopEarly: the limits bound what a
// rendering allocates, not only what it outputs: each of these built
// gigabytes (or ran for minutes) before the builtins' work was estimated
// ahead of each call.
func TestRenderingsThatWouldBuildTooMuchStopEarly(t *testing.T) {
	data := decode(t, documents[0])
	big := `{{ $a := printf "%10000d" 0 }}{{ $b := print` + strings.Repeat(" $a", 200) + ` }}`
	for _, text := range []string{
		`{{ range 100000 }}{{ $x := printf "%1000000d" 0 }}{{ end }}ok`,
		`{{ printf "%*d" 1000000000 0 }}`,
		`{{ printf "%.1000000f" 1.0 }}`,
		big,
		`{{ $a := printf "%10000d" 0 }}{{ range 100000 }}{{ $x := print $a }}{{ end }}`,
		`{{ $a := printf "%10000d" 0 }}{{ range 100000 }}{{ $x := html $a $a $a }}{{ end }}`,
		`{{ range 100000 }}{{ $x := printf "%v" $ }}{{ end }}`,
	} {
		t.Run("", func(t *testing.T) {
			tp, err := Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = tp.Render(data)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%q: error %v, want ErrTooLarge", text, err)
			}
			if built := after.TotalAlloc - before.TotalAlloc; built > 256<<20 {
				t.Errorf("%q allocated %d MB before it stopped", text, built>>20)
			}
		})
	}
}

// TestOrdinaryRenderingsStayWithinTheBudget: a selector-sized rendering,
// repeated over a long list, is not taken for one that builds too much.
func TestOrdinaryRenderingsStayWithinTheBudget(t *testing.T) {
	data := decode(t, documents[0])
	tp, err := Parse(`{{ range 5000 }}{{ printf "%s-%d-%.2f" $.metadata.name $.spec.size $.spec.ratio }}{{ end }}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Render(data); err != nil {
		t.Fatal(err)
	}
}
