package webui

import (
	"bytes"
	"fmt"
	"html"
	"net/url"
	"strings"
	"time"
)

// htmlWriter builds a page. Markup comes only from this package's
// constant strings; every value goes through html.EscapeString, which
// escapes <, >, &, ' and ", so a value is text wherever it lands, in an
// element or in a (double-quoted) attribute. Links are built by
// objectPath and operatorPath from path-escaped segments under /ui/.
type htmlWriter struct{ b bytes.Buffer }

// f writes markup in which each %s is replaced by the next value, escaped.
func (w *htmlWriter) f(markup string, values ...any) {
	parts := strings.Split(markup, "%s")
	for i, p := range parts {
		w.b.WriteString(p)
		if i < len(parts)-1 {
			if i < len(values) {
				w.text(values[i])
			} else {
				w.b.WriteString("%!s(MISSING)") // a bug of this package, seen in tests
			}
		}
	}
}

// text writes one value escaped.
func (w *htmlWriter) text(v any) {
	w.b.WriteString(html.EscapeString(fmt.Sprint(v)))
}

// operatorPath is the page of operator op.
func operatorPath(op string) string { return "/ui/operators/" + url.PathEscape(op) }

// objectPath is the object page of an object of operator op.
func objectPath(op, namespace, name string) string {
	if namespace == "" {
		namespace = ClusterScope
	}
	return operatorPath(op) + "/objects/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// ago says how far t is from now: "in 30s", "1m0s ago"; "" for none.
func (u *ui) ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	d := t.Sub(u.cfg.Clock()).Round(time.Second)
	if d >= 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}

// stamp is t in RFC 3339, UTC; "" for none.
func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
