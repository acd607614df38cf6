package webui

import (
	"github.com/opgate/opgate/gateway/inspect"
)

func (p objectPage) write(w *htmlWriter, u *ui) {
	d := p.Detail
	layout(w, p.Page, func() {
		w.f(`<p><a href="/ui/">All operators</a> › <a href="%s">%s</a></p>`+"\n<h1>%s</h1>\n"+`<dl class="facts">`+"\n", operatorPath(d.Operator), d.Operator, d.Key())
		w.f(`<dt>state</dt><dd id="state" class="state-%s">%s</dd>`+"\n", d.State, d.State)
		if f := d.Failure; f != nil {
			w.f("<dt>failing callback</dt><dd>%s, attempt %s (first %s)</dd>\n", f.Name(), f.Attempts, stamp(&f.FirstAt))
			w.f(`<dt>last error</dt><dd id="last-error" class="error">`)
			writeFailure(w, f)
			w.f("</dd>\n")
			if f.NextRetry != nil {
				w.f(`<dt>next retry</dt><dd><time datetime="%s">%s (%s)</time></dd>`+"\n", stamp(f.NextRetry), stamp(f.NextRetry), u.ago(f.NextRetry))
			}
		}
		if d.StateError != "" {
			w.f(`<dt>state annotation</dt><dd class="error">unreadable: %s</dd>`+"\n", d.StateError)
		}
		if d.StateForeign {
			w.f("<dt>state annotation</dt><dd>written for another object: this one is new to the gateway</dd>\n")
		}
		w.f("<dt>uid</dt><dd>%s</dd>\n<dt>generation</dt><dd>%s (resourceVersion %s)</dd>\n", d.UID, d.Generation, d.ResourceVersion)
		if d.DeletingSince != nil {
			w.f("<dt>deleting since</dt><dd>%s (%s)</dd>\n", stamp(d.DeletingSince), u.ago(d.DeletingSince))
		}
		w.f("<dt>finalizer</dt><dd>%s: %s%s</dd>\n", d.Finalizer.Name, choose(d.Finalizer.Held, "held", "not held"), choose(d.Finalizer.ReleaseRequested, ", release requested", ""))
		writeEssence(w, d.Essence)
		if r := d.Round; r != nil {
			w.f("<dt>round</dt><dd>%s: done %s· waiting %s</dd>\n", r.Event, words(r.Done, "none "), words(r.Waiting, "none"))
			for _, o := range r.Owed {
				w.f("<dt>owed</dt><dd>%s the essence now, having acted on <code>%s</code>, a change taken back (its old)</dd>\n", o.Callback, o.ActedOn)
			}
		}
		if d.Reconcile.Requested != "" {
			w.f("<dt>reconcile requested</dt><dd>%s%s</dd>\n", d.Reconcile.Requested, choose(d.Reconcile.Handled, " (handled)", " (to come)"))
		}
		w.f("</dl>\n<h2>Callbacks</h2>\n" + `<table id="callbacks">` + "\n<thead><tr><th>callback</th><th>events</th><th>state</th><th>attempts</th><th>last error</th><th>next</th></tr></thead>\n<tbody>\n")
		for _, c := range d.Callbacks {
			writeCallback(w, u, c)
		}
		w.f("</tbody>\n</table>\n" + `<p class="hint">Events: <code>kubectl get events `)
		if d.Namespace != "" {
			w.f("-n %s ", d.Namespace)
		}
		w.f("--field-selector involvedObject.uid=%s</code></p>\n", d.UID)
	})
}

func writeEssence(w *htmlWriter, e inspect.Essence) {
	w.f("<dt>handled essence</dt><dd>")
	if e.Handled != "" {
		w.f("<code>%s</code>", e.Handled)
	} else {
		w.f("never handled")
	}
	if e.Age != "" {
		w.f(", %s ago", e.Age)
	}
	if e.Handled != e.Current {
		w.f("; now <code>%s</code> (a change waits)", e.Current)
	}
	w.f("; %s bytes kept</dd>\n", e.StoredBytes)
}

func writeCallback(w *htmlWriter, u *ui, c inspect.Callback) {
	w.f(`<tr class="state-%s">`+"\n<td>%s</td><td>%s", c.State, c.ID, words(c.Events, ""))
	if c.Interval != "" {
		w.f("every %s", c.Interval)
	}
	w.f("</td><td>%s</td>\n", c.State)
	if f := c.Failure; f != nil {
		w.f(`<td>%s</td><td class="error">`, f.Attempts)
		writeFailure(w, f)
		w.f("</td><td>%s</td>\n", u.ago(f.NextRetry))
	} else {
		w.f("<td></td><td></td><td>%s</td>\n", u.ago(c.NextFire))
	}
	w.f("</tr>\n")
}

// words is each word followed by a space; none when there is no word.
func words(ws []string, none string) string {
	if len(ws) == 0 {
		return none
	}
	s := ""
	for _, x := range ws {
		s += x + " "
	}
	return s
}

func choose(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
