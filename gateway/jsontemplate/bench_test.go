package jsontemplate

import (
	"strings"
	"testing"
	"text/template"
)

// BenchmarkRenderSelector renders a typical related selector value over
// an object, with this package and with text/template.
func BenchmarkRenderSelector(b *testing.B) {
	const text = `{{ .metadata.name }}-{{ .spec.size }}`
	data := decode(b, documents[0])
	b.Run("jsontemplate", func(b *testing.B) {
		tp, err := Parse(text)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tp.Render(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("text/template", func(b *testing.B) {
		tp := template.Must(template.New(name).Option("missingkey=error").Parse(text))
		b.ReportAllocs()
		for b.Loop() {
			var sb strings.Builder
			if err := tp.Execute(&sb, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
