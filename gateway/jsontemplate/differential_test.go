package jsontemplate

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"text/template"

	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// documents are the data the templates run over, decoded as the gateway's
// informers decode objects (integers int64, other numbers float64).
var documents = []string{
	`{"apiVersion":"v1","kind":"Widget","metadata":{"name":"web","namespace":"ns","labels":{"app":"web","tier":"<b>&'\"="}},
	  "spec":{"size":3,"ratio":0.5,"big":1e20,"huge":18446744073709551615,"enabled":true,"off":false,"empty":"","none":null,
	  "list":["a","b","c"],"nums":[1,2,3],"mixed":[1,"x",null,{"k":"v"},[1],true,2.5],"emptyList":[],"emptyMap":{},
	  "nested":{"a":{"b":{"c":"deep"}}},"unicode":"héllo\u0001\u2028 wörld","neg":-4,"zero":0,"fzero":0.0,"count":"3",
	  "keys":{"z":1,"a":2,"m":3},"url":"a b&c=d/é","fmt":"%d-%s","idx":1}}`,
	`{}`,
	`{"metadata":null,"spec":{"list":[null],"size":-1,"nested":[]}}`,
}

func decode(t testing.TB, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := utiljson.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	return m
}

// templates exercise the language over JSON data. Each runs over every
// document with both text/template and this package.
var templates = []string{
	// break in the else list of a range inside a range ends the inner one
	`{{ range .spec.list }}{{ range $.spec.emptyList }}{{ else }}{{ break }}{{ end }}{{ . }}{{ end }}`,
	`{{ range .spec.list }}{{ range 0 }}{{ else }}{{ if eq . "b" }}{{ break }}{{ end }}{{ end }}{{ . }}{{ end }}`,
	`{{ range .spec.list }}{{ range 0 }}{{ else }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ end }}{{ . }}{{ end }}`,
	// widths and precisions within the limit
	`{{ printf "%5d|%-8s|%.2f|%08.3f" .spec.size .metadata.name .spec.ratio .spec.ratio }}`,
	`{{ printf "%*d" 4 .spec.size }}`,
	// text, fields, variables
	`plain text`, `{{ .metadata.name }}`, `{{.metadata.name}}-{{.spec.size}}`, `{{ .spec.nested.a.b.c }}`,
	`{{ .missing }}`, `{{ .metadata.missing }}`, `{{ .spec.none }}`, `{{ .spec.none.x }}`, `{{ .spec.list.x }}`,
	`{{ .spec.size.x }}`, `{{ . }}`, `{{ .spec }}`, `{{ .spec.list }}`, `{{ .spec.mixed }}`, `{{ .spec.big }}`,
	`{{ .spec.huge }}`, `{{ .spec.ratio }}`, `{{ .spec.enabled }}`, `{{ .spec.emptyMap }}`, `{{ .spec.unicode }}`,
	`{{ $ }}`, `{{ $.metadata.name }}`, `{{ $x := .metadata.name }}{{ $x }}`, `{{ $x := .spec }}{{ $x.size }}`,
	`{{ $x := 1 }}{{ $x = 2 }}{{ $x }}`, `{{ $x := .spec.none }}{{ $x }}`, `{{ $ = 3 }}{{ $ }}`,
	`{{ $x := .spec.list }}{{ $x.y }}`, `{{- .metadata.name -}} x {{- "y" }}`, `{{/* comment */}}a`,
	`{{ .metadata.name 1 }}`, `{{ 1 | .metadata.name }}`, `{{ "a" .metadata }}`, `{{ $x := 1 }}{{ $x 2 }}`,
	`{{ (.metadata).name }}`, `{{ (.spec.nested).a.b }}`, `{{ (index .spec.mixed 3).k }}`, `{{ (.spec.none).x }}`,
	`{{ (len .spec.list).x }}`, `{{ (1) }}`, `{{ (.metadata.name) 1 }}`, `{{ nil }}`, `{{ (nil) }}`,
	// constants
	`{{ 1 }}`, `{{ -1 }}`, `{{ 1.5 }}`, `{{ 1e3 }}`, `{{ 0x10 }}`, `{{ 0x1p4 }}`, `{{ 'a' }}`, `{{ 1i }}`,
	`{{ 0b101 }}`, `{{ 0o17 }}`, `{{ 1_000 }}`, `{{ 99999999999999999999 }}`, `{{ 18446744073709551615 }}`,
	`{{ "s" }}`, "{{ `raw` }}", `{{ true }}`, `{{ false }}`, `{{ "\u00e9\n" }}`,
	// if / with / else
	`{{ if .spec.enabled }}yes{{ else }}no{{ end }}`, `{{ if .spec.off }}yes{{ else }}no{{ end }}`,
	`{{ if .spec.empty }}y{{ else if .spec.zero }}z{{ else if .spec.fzero }}f{{ else }}n{{ end }}`,
	`{{ if .spec.none }}y{{ end }}`, `{{ if .spec.emptyList }}y{{ else }}n{{ end }}`, `{{ if .spec.emptyMap }}y{{ end }}`,
	`{{ if .spec.list }}{{ len .spec.list }}{{ end }}`, `{{ if 1i }}c{{ end }}`, `{{ if .missing }}x{{ end }}`,
	`{{ with .spec.nested }}{{ .a.b.c }}{{ end }}`, `{{ with .spec.none }}x{{ else }}none{{ end }}`,
	`{{ with .spec.empty }}x{{ else with .spec.size }}{{ . }}{{ end }}`, `{{ with $x := .spec.size }}{{ $x }}{{ . }}{{ end }}`,
	`{{ if $x := .spec.size }}{{ $x }}{{ end }}{{ $x := 5 }}{{ $x }}`, `{{ with .metadata }}{{ $.kind }}{{ end }}`,
	// range
	`{{ range .spec.list }}[{{ . }}]{{ end }}`, `{{ range $i, $e := .spec.list }}{{ $i }}={{ $e }};{{ end }}`,
	`{{ range $e := .spec.mixed }}<{{ $e }}>{{ end }}`, `{{ range .spec.keys }}{{ . }}{{ end }}`,
	`{{ range $k, $v := .spec.keys }}{{ $k }}:{{ $v }},{{ end }}`, `{{ range .spec.emptyList }}x{{ else }}empty{{ end }}`,
	`{{ range .spec.none }}x{{ else }}nil{{ end }}`, `{{ range .spec.size }}{{ . }}{{ end }}`, `{{ range 3 }}{{ . }}{{ end }}`,
	`{{ range $i := 3 }}{{ $i }}{{ end }}`, `{{ range $i, $e := 3 }}{{ $i }}{{ end }}`, `{{ range .spec.neg }}x{{ else }}neg{{ end }}`,
	`{{ range .spec.unicode }}{{ . }}{{ end }}`, `{{ range .spec.ratio }}x{{ end }}`, `{{ range .spec.enabled }}x{{ end }}`,
	`{{ range .spec.list }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}`,
	`{{ range .spec.list }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}`,
	`{{ range $x := .spec.list }}{{ end }}{{ $x }}`, `{{ $i := 0 }}{{ $e := 0 }}{{ range $i, $e = .spec.list }}{{ end }}{{ $i }}{{ $e }}`,
	`{{ $e := 0 }}{{ range $e = .spec.nums }}{{ $e }}{{ end }}{{ $e }}`, `{{ range .spec.mixed }}{{ .k }}{{ end }}`,
	`{{ range .spec.list }}{{ $x := . }}{{ $x }}{{ end }}`, `{{ range .spec.list }}{{ range $.spec.nums }}{{ . }}{{ end }}{{ end }}`,
	`{{ range index .spec.mixed 4 }}{{ . }}{{ end }}`, `{{ range $i, $c := slice .spec.unicode 0 2 }}{{ $c }}{{ end }}`,
	`{{ range len .spec.list }}{{ . }}{{ end }}`, `{{ range index .spec.unicode 0 }}.{{ end }}`,
	// functions
	`{{ and .spec.enabled .spec.size }}`, `{{ and .spec.off .missing }}`, `{{ and .missing .spec.off }}`, `{{ or .spec.off .spec.empty }}`,
	`{{ or .spec.size .missing }}`, `{{ or .spec.none .spec.none }}`, `{{ and }}`, `{{ .spec.size | and true }}`, `{{ .spec.none | or false }}`,
	`{{ not .spec.size }}`, `{{ not .spec.none }}`, `{{ not }}`, `{{ not 1 2 }}`, `{{ len .spec.list }}`, `{{ len .metadata.name }}`,
	`{{ len .spec.keys }}`, `{{ len .spec.size }}`, `{{ len .spec.none }}`, `{{ len nil }}`, `{{ .spec.list | len }}`, `{{ len }}`,
	`{{ index .spec.list 1 }}`, `{{ index .spec.list 3 }}`, `{{ index .spec.list -1 }}`, `{{ index .spec.list .spec.idx }}`,
	`{{ index .spec.list "1" }}`, `{{ index .spec.list 1.0 }}`, `{{ index .spec.list nil }}`, `{{ index .spec.keys "a" }}`,
	`{{ index .spec.keys "nope" }}`, `{{ index .spec.keys "nope" "x" }}`, `{{ index .spec.keys 1 }}`, `{{ index .spec.keys nil }}`,
	`{{ index .spec.mixed 3 "k" }}`, `{{ index .spec.mixed 4 0 }}`, `{{ index .metadata.name 0 }}`, `{{ index .metadata.name 3 }}`,
	`{{ index . }}`, `{{ index nil }}`, `{{ index .spec.size 0 }}`, `{{ index .spec.none 0 }}`, `{{ index .spec.mixed 2 0 }}`,
	`{{ index .metadata.name (index .metadata.name 0) }}`, `{{ eq (index .metadata.name 0) 119 }}`, `{{ lt (index .metadata.name 0) -1 }}`,
	`{{ slice .spec.list 1 }}`, `{{ slice .spec.list 1 2 }}`, `{{ slice .spec.list 0 1 2 }}`, `{{ slice .spec.list 2 1 }}`,
	`{{ slice .spec.list 0 9 }}`, `{{ slice .spec.list }}`, `{{ slice .metadata.name 1 }}`, `{{ slice .metadata.name 1 2 3 }}`,
	`{{ slice .spec.list 0 1 2 3 }}`, `{{ slice .spec.size }}`, `{{ slice nil }}`, `{{ slice .spec.list 0 2 1 }}`, `{{ slice .metadata.name 9 }}`,
	`{{ print }}`, `{{ print .spec.size .spec.ratio "x" 1 }}`, `{{ print .spec.none }}`, `{{ print nil . }}`, `{{ print "a" "b" 1 2 }}`,
	`{{ println .metadata.name 1 }}`, `{{ printf "%s-%d" .metadata.name .spec.size }}`, `{{ printf "%v %T" .spec.size .spec.size }}`,
	`{{ printf "%T %T %T %T" 1 1.5 'a' 1i }}`, `{{ printf .spec.fmt .spec.size .metadata.name }}`, `{{ printf .spec.size }}`,
	`{{ printf nil }}`, `{{ printf 1 }}`, `{{ printf }}`, `{{ "x%sy" | printf "%s" }}`, `{{ "%d" | printf }}`, `{{ printf "%d" }}`,
	`{{ printf .spec.none }}`, `{{ printf (print "%") }}`, `{{ printf "%v" .spec.keys }}`, `{{ printf "%q" .spec.mixed }}`,
	`{{ html .metadata.labels.tier }}`, `{{ html .spec.none }}`, `{{ html nil 1 }}`, `{{ html 1 2 }}`, `{{ html "a" 1 }}`, `{{ html }}`,
	`{{ js .metadata.labels.tier }}`, `{{ js .spec.unicode }}`, `{{ js "\x00\x1f\u00e9\u2028" }}`, `{{ urlquery .spec.url }}`,
	`{{ urlquery .spec.url .spec.size }}`, `{{ .spec.url | urlquery }}`, `{{ .metadata.labels.tier | html | js }}`,
	// comparisons
	`{{ eq .spec.size 3 }}`, `{{ eq .spec.size 3.0 }}`, `{{ eq .spec.size .spec.nums }}`, `{{ eq .metadata.name "web" "x" }}`,
	`{{ eq .spec.size 1 2 3 }}`, `{{ eq .spec.size 1 "a" }}`, `{{ eq .spec.size 3 "a" }}`, `{{ eq .spec.none nil }}`, `{{ eq nil nil }}`,
	`{{ eq .spec.none 1 }}`, `{{ eq 1 .spec.none }}`, `{{ eq .spec.list .spec.list }}`, `{{ eq .spec.list nil }}`, `{{ eq .spec.keys .spec.list }}`,
	`{{ eq .spec.keys "a" }}`, `{{ eq .spec.enabled true }}`, `{{ eq .spec.ratio 0.5 }}`, `{{ eq 1i 1i }}`, `{{ eq .spec.size }}`, `{{ eq }}`,
	`{{ ne .spec.size 3 }}`, `{{ ne .metadata.name "x" }}`, `{{ ne nil nil }}`, `{{ ne .spec.size "3" }}`, `{{ ne 1 2 3 }}`,
	`{{ lt .spec.size 4 }}`, `{{ lt .spec.neg .spec.size }}`, `{{ lt "a" "b" }}`, `{{ lt .spec.ratio 1.0 }}`, `{{ lt true false }}`,
	`{{ lt 1i 2i }}`, `{{ lt .spec.none 1 }}`, `{{ lt 1 .spec.none }}`, `{{ lt .spec.list 1 }}`, `{{ lt 1 1.5 }}`, `{{ lt -1 (index .metadata.name 0) }}`,
	`{{ le 3 .spec.size }}`, `{{ le 4 .spec.size }}`, `{{ le "b" "a" }}`, `{{ le true true }}`, `{{ gt .spec.size 2 }}`, `{{ gt "a" "a" }}`,
	`{{ gt nil 1 }}`, `{{ ge .spec.size 3 }}`, `{{ ge 1.5 2.5 }}`, `{{ ge 1 "a" }}`, `{{ .spec.size | eq 3 }}`, `{{ 3 | lt 2 }}`,
	// pipelines
	`{{ .metadata.name | printf "%s-x" | len }}`, `{{ .spec.size | print | len }}`, `{{ . | len }}`, `{{ 1 | 2 }}`, `{{ 1 | . }}`,
	`{{ 1 | nil }}`, `{{ 1 | $ }}`, `{{ "x" | (print) }}`, `{{ 1 | (.spec) }}`, `{{ $x := .spec.size | print }}{{ $x }}`,
	`{{ print (len .spec.list) (index .spec.list 0) }}`, `{{ print len }}`, `{{ print .spec.size.x }}`, `{{ print $ }}`,
	`{{ $x := 1 }}{{ range .spec.list }}{{ $x := . }}{{ $x }}{{ end }}{{ $x }}`, `{{ $x := 1 }}{{ range .spec.list }}{{ $x = . }}{{ end }}{{ $x }}`,
	`{{ range $k, $v := . }}{{ $k }};{{ end }}`, `{{ range .spec.list }}{{ range $.spec.nums }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}|{{ end }}`,
	`{{- /* c */ -}} x`, `{{ printf "%v|%v|%d" nil .spec.none .spec.size }}`, `{{ if and .spec.list (gt (len .spec.list) 2) }}many{{ end }}`,
	`{{ with index .spec.mixed 3 }}{{ .k }}{{ end }}`, `{{ range .spec.mixed }}{{ with . }}{{ printf "%T" . }} {{ end }}{{ end }}`,
	`{{ and.x }}`, `{{ print (print "a").x }}`, `{{ (print "a").x }}`, `{{ with .spec }}{{ print . }}{{ end }}`,
}

// refused are constructs that cannot apply to JSON data.
var refused = []struct{ text, want string }{
	{`{{ call .spec.size }}`, "call"},
	{`{{ .spec | call }}`, "call"},
	{`{{ print (call .x 1) }}`, "call"},
	{`{{ define "x" }}a{{ end }}b`, "define"},
	{`{{ define "selector" }}a{{ end }}`, "define"},
	{`{{ template "x" . }}`, "template"},
	{`{{ block "x" . }}a{{ end }}`, "block"},
}

// match runs text over data with both text/template and this package and
// fails unless both fail or both print the same.
func match(t *testing.T, text string, data map[string]any) {
	t.Helper()
	ref, refParseErr := template.New(name).Option("missingkey=error").Parse(text)
	tp, parseErr := Parse(text)
	if refParseErr != nil || parseErr != nil {
		if (refParseErr == nil) != (parseErr == nil) {
			t.Fatalf("%q: parse error %v, text/template's %v", text, parseErr, refParseErr)
		}
		return
	}
	got, err := tp.Render(data)
	if errors.Is(err, ErrTooLarge) {
		return // beyond the limits text/template does not have
	}
	var b bytes.Buffer
	refErr := ref.Execute(&b, data)
	switch {
	case err != nil && refErr != nil:
	case err == nil && refErr != nil && strings.Contains(refErr.Error(), "cannot index slice/array with type interface {}"):
		// The one known difference (docs/registration.md): text/template's
		// slice refuses an index read from the data; jsontemplate takes it.
	case err != nil || refErr != nil:
		t.Fatalf("%q: output %q, error %v; text/template's %q, error %v", text, got, err, b.String(), refErr)
	case got != b.String():
		t.Fatalf("%q: output %q, text/template's %q", text, got, b.String())
	}
}

func TestRenderMatchesTextTemplate(t *testing.T) {
	for i, doc := range documents {
		data := decode(t, doc)
		for _, text := range templates {
			t.Run("", func(t *testing.T) {
				t.Logf("document %d", i)
				match(t, text, data)
			})
		}
	}
}

func TestParseRefusesWhatCannotApplyToJSON(t *testing.T) {
	for _, tt := range refused {
		_, err := Parse(tt.text)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("Parse(%q) = %v, want an error naming %s as not supported", tt.text, err, tt.want)
		}
	}
}

func FuzzRenderMatchesTextTemplate(f *testing.F) {
	for _, text := range templates {
		f.Add(text, documents[0])
	}
	f.Add(`{{ range $k, $v := . }}{{ $k }}{{ end }}`, `{"b":1,"a":[1,2]}`)
	f.Fuzz(func(t *testing.T, text, doc string) {
		var data map[string]any
		if utiljson.Unmarshal([]byte(doc), &data) != nil {
			data = decode(t, documents[0])
		}
		if _, err := Parse(text); err != nil && strings.Contains(err.Error(), "not supported") {
			return // refused, checked by TestParseRefusesWhatCannotApplyToJSON
		}
		match(t, text, data)
	})
}
