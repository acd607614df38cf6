package webui

import (
	"github.com/opgate/opgate/gateway/inspect"
)

// layout writes the page around its content.
func layout(w *htmlWriter, p Page, content func()) {
	w.f(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%s · opgate</title>
<link rel="stylesheet" href="/ui/static/style.css">
<script src="/ui/static/live.js" defer></script>
</head>
<body data-refresh-ms="%s">
<header>
<a class="home" href="/ui/">opgate</a>
<span id="live" class="live" title="this page reloads its content every %s ms">as of <time>%s</time></span>
</header>
<main id="content">
`, p.Title, p.RefreshMS, p.RefreshMS, stamp(&p.Now))
	content()
	w.f("</main>\n</body>\n</html>\n")
}

func (p errorPage) write(w *htmlWriter, _ *ui) {
	layout(w, p.Page, func() {
		w.f(`<h1>%s</h1>
<p class="error" id="error">%s</p>
<p><a href="/ui/">All operators</a></p>
`, p.Title, p.Error)
	})
}

func (p indexPage) write(w *htmlWriter, _ *ui) {
	layout(w, p.Page, func() {
		w.f("<h1>Operators</h1>\n")
		if len(p.Operators) == 0 {
			w.f("<p>This gateway runs no operator (yet): is it the leader, and are WebhookOperators registered?</p>\n")
		}
		w.f(`<table id="operators">` + "\n<thead><tr><th>operator</th><th>watches</th><th>ready</th><th>objects</th>")
		for _, s := range p.States {
			w.f("<th>%s</th>", s)
		}
		w.f("</tr></thead>\n<tbody>\n")
		for _, op := range p.Operators {
			failing := ""
			if op.Failing != 0 {
				failing = "failing"
			}
			w.f(`<tr class="%s">`+"\n"+`<td><a href="%s">%s</a></td>`+"\n<td>%s</td>\n", failing, operatorPath(op.Name), op.Name, op.Watch)
			w.f(`<td class="ready-%s" title="%s">%s</td>`+"\n", op.Ready.Ready, op.Ready.Message, readyText(op.Ready, ""))
			if !op.Known {
				w.f(`<td title="%s">?</td>`+"\n", unknownObjects)
				for _, s := range p.States {
					w.f(`<td class="state-%s" title="%s">?</td>`, s, unknownObjects)
				}
				w.f("\n</tr>\n")
				continue
			}
			w.f("<td>%s</td>\n", op.Objects)
			for _, s := range p.States {
				w.f(`<td class="state-%s">%s</td>`, s, op.States[s])
			}
			w.f("\n</tr>\n")
		}
		w.f("</tbody>\n</table>\n")
	})
}

// readyText is "Ready", or the reason it is not, after prefix.
func readyText(r inspect.Readiness, prefix string) string {
	if r.Ready {
		return "Ready"
	}
	return prefix + r.Reason
}

func (p operatorPage) write(w *htmlWriter, u *ui) {
	op := p.Operator
	layout(w, p.Page, func() {
		w.f(`<p><a href="/ui/">All operators</a></p>`+"\n<h1>Operator %s</h1>\n", op.Name)
		w.f(`<p>Watches %s. <span class="ready-%s">%s</span>`, op.Watch, op.Ready.Ready, readyText(op.Ready, "Not ready: "))
		if op.Ready.Message != "" {
			w.f(" (%s)", op.Ready.Message)
		}
		w.f("</p>\n")
		if !p.Known {
			w.f(`<p class="counts">Objects %s.</p>`+"\n", unknownObjects)
			return
		}
		w.f(`<p class="counts">%s objects:`, op.Objects)
		for _, s := range p.States {
			w.f(` <span class="state-%s">%s %s</span>`, s, op.States[s], s)
		}
		w.f("</p>\n" + `<table id="objects">` + "\n<thead><tr><th>object</th><th>state</th><th>callback</th><th>attempts</th><th>last error</th><th>next retry</th></tr></thead>\n<tbody>\n")
		for _, o := range p.Objects {
			w.f(`<tr class="object state-%s" data-object="%s" data-state="%s">`+"\n", o.State, o.Key(), o.State)
			w.f(`<td><a href="%s">%s</a></td>`+"\n"+`<td class="state">%s</td>`+"\n", objectPath(op.Name, o.Namespace, o.Name), o.Key(), o.State)
			if f := o.Failure; f != nil {
				w.f("<td>%s</td><td>%s</td>\n", f.Name(), f.Attempts)
				w.f(`<td class="error">`)
				writeFailure(w, f)
				w.f("</td>\n<td>")
				if f.NextRetry != nil {
					w.f(`<time datetime="%s">%s</time>`, stamp(f.NextRetry), u.ago(f.NextRetry))
				}
				w.f("</td>\n")
			} else {
				w.f("<td></td><td></td><td>%s</td><td></td>\n", o.StateError)
			}
			w.f("</tr>\n")
		}
		if len(p.Objects) == 0 {
			w.f(`<tr><td colspan="6">No objects.</td></tr>` + "\n")
		}
		w.f("</tbody>\n</table>\n")
	})
}

// writeFailure writes "class reason: message".
func writeFailure(w *htmlWriter, f *inspect.Failure) {
	w.f("%s", f.Class)
	if f.Reason != "" {
		w.f(" %s", f.Reason)
	}
	w.f(": %s", f.Message)
}
