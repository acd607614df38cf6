package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/opgate/opgate/gateway/inspect"
)

// fprintf is fmt.Fprintf with its string arguments escaped: they hold
// what handlers, Events, annotations and Leases say, which reaches the
// terminal of whoever runs status.
func fprintf(w io.Writer, format string, args ...any) {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = escaped(s)
		}
	}
	fmt.Fprintf(w, format, args...)
}

// escaped is s with its control characters, bidi controls included, and
// invalid bytes written as Go escapes (\x1b, \r, \t, \u202e): an ESC
// sequence would rewrite the terminal, \r overwrite the line, \t break a
// table's columns, a bidi control reorder what is shown. Other unicode is
// left readable.
func escaped(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func printOperators(w io.Writer, ops []report) error {
	if len(ops) == 0 {
		_, err := fmt.Fprintln(w, "No WebhookOperators.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATOR\tWATCH\tREADY\tOBJECTS\tFAILING\tWAITING ON FINALIZER")
	for _, o := range ops {
		objects, failing, waiting := o.counts()
		fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.Name, orDash(o.Watch), o.readyText(), objects, failing, waiting)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range ops {
		if o.stale() {
			fprintf(w, "%s: %s\n", o.Name, o.Gateway.Why)
		}
		if o.SpecError != "" {
			fprintf(w, "%s:\n", o.Name)
			printRefused(w, "  ", o.SpecError)
		}
	}
	return nil
}

// printRefused says that the operator's latest spec is refused, and why:
// its Ready and counts are then those of the spec the gateway still runs.
func printRefused(w io.Writer, indent, why string) {
	fprintf(w, "%slatest spec refused (SpecAccepted False); a gateway keeps running the last valid one, if any:\n", indent)
	printLines(w, indent+"  ", why)
}

// printLines prints each line of s escaped and indented on its own: a
// message of several errors keeps its line breaks, which escaping would
// turn into a literal \n joining them.
func printLines(w io.Writer, indent, s string) {
	for _, line := range strings.Split(s, "\n") {
		fprintf(w, "%s%s\n", indent, line)
	}
}

// stale: Ready says True, but the gateway that wrote it no longer holds
// its Lease.
func (r report) stale() bool { return r.Gateway != nil && r.Gateway.Stale }

func (r report) readyText() string {
	if r.stale() {
		return ready(r.Ready) + " (stale)"
	}
	return ready(r.Ready)
}

// counts are the operator's counts, "?" when its objects could not be
// listed: zero would say there is nothing to look at.
func (r report) counts() (objects, failing, waiting string) {
	if r.Error != "" {
		return "?", "?", "?"
	}
	return fmt.Sprint(r.Objects), fmt.Sprint(r.Failing), fmt.Sprint(r.WaitingOnFinalizer)
}

func ready(r inspect.Readiness) string {
	switch {
	case r.Ready:
		return "True"
	case r.Reason == "Unknown":
		return "Unknown"
	}
	return "False (" + r.Reason + ")"
}

func printUnsettled(w io.Writer, o report) error {
	objects, failing, waiting := o.counts()
	fprintf(w, "%s: %s, Ready %s, %s %s, %s failing, %s waiting on a finalizer\n",
		o.Name, orDash(o.Watch), o.readyText(), objects, plural(o.Objects, "object", "objects"), failing, waiting)
	if !o.Ready.Ready && o.Ready.Message != "" {
		printLines(w, "  ", o.Ready.Message)
	}
	if o.Ready.Ready && o.Gateway != nil && o.Gateway.Why != "" {
		fprintf(w, "  %s\n", o.Gateway.Why)
	}
	if o.SpecError != "" {
		printRefused(w, "  ", o.SpecError)
	}
	if o.Error != "" {
		return nil // the command's error says why
	}
	if len(o.Unsettled) == 0 {
		_, err := fmt.Fprintln(w, "Every object is settled or pending.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tSTATE\tCALLBACK\tATTEMPTS\tNEXT RETRY\tLAST ERROR")
	for _, u := range o.Unsettled {
		cb, attempts, next, last := "-", "-", "-", "-"
		if f := u.Failure; f != nil {
			cb, attempts, last = f.Name(), fmt.Sprint(f.Attempts), lastError(f)
			if f.NextRetry != nil {
				next = f.NextRetry.UTC().Format(time.RFC3339)
			}
		}
		fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Key(), u.State, cb, attempts, next, last)
	}
	return tw.Flush()
}

func lastError(f *inspect.Failure) string {
	s := f.Class
	if f.Reason != "" {
		s += " " + f.Reason
	}
	if f.Message != "" {
		s += ": " + strings.ReplaceAll(f.Message, "\n", " ")
	}
	return s
}

func printDetail(w io.Writer, d inspect.Detail, now time.Time) error {
	p := func(format string, args ...any) { fprintf(w, format, args...) }
	p("%s (operator %s)\n", d.Key(), d.Operator)
	p("  state:       %s\n", d.State)
	if d.Failure != nil {
		p("  failing:     %s after %d %s: %s\n", d.Failure.Name(), d.Failure.Attempts, plural(d.Failure.Attempts, "attempt", "attempts"), lastError(d.Failure))
		if d.Failure.NextRetry != nil {
			p("  next retry:  %s (in %s)\n", d.Failure.NextRetry.UTC().Format(time.RFC3339), d.Failure.NextRetry.Sub(now).Round(time.Second))
		}
	}
	if d.StateError != "" {
		p("  state annotation unreadable: %s\n", d.StateError)
	}
	if d.StateForeign {
		p("  state annotation was written for another object: handled as new\n")
	}
	p("  generation:  %d (resourceVersion %s)\n", d.Generation, d.ResourceVersion)
	if d.DeletingSince != nil {
		p("  deleting since %s\n", d.DeletingSince.UTC().Format(time.RFC3339))
	}
	e := d.Essence
	switch {
	case e.Handled == "":
		p("  essence:     never handled (create is due)\n")
	case e.Handled == e.Current:
		p("  essence:     handled %s%s, stored %d bytes\n", short(e.Handled), age(e), e.StoredBytes)
	default:
		p("  essence:     handled %s%s; now %s: a change waits to be handled\n", short(e.Handled), age(e), short(e.Current))
	}
	if r := d.Round; r != nil {
		p("  round:       %s, done [%s], waiting [%s]\n", r.Event, strings.Join(r.Done, ", "), strings.Join(r.Waiting, ", "))
		for _, o := range r.Owed {
			p("  owed:        %s the essence now, having acted on %s, a change taken back (its old)\n", o.Callback, short(o.ActedOn))
		}
	}
	fin := "not held"
	if d.Finalizer.Held {
		fin = "held"
	}
	p("  finalizer:   %s %s", d.Finalizer.Name, fin)
	if d.Finalizer.ReleaseRequested {
		p(" (release requested)")
	}
	p("\n")
	if rq := d.Reconcile; rq.Requested != "" {
		done := "handled"
		if !rq.Handled {
			done = "not handled yet"
		}
		p("  reconcile requested at %s: %s\n", rq.Requested, done)
	}
	if err := printCallbacks(w, d.Callbacks); err != nil {
		return err
	}
	return printEvents(w, d.Events)
}

func printCallbacks(w io.Writer, cbs []inspect.Callback) error {
	if len(cbs) == 0 { // a refused spec's: the running ones are not in the cluster
		_, err := fmt.Fprintln(w, "Callbacks: unknown")
		return err
	}
	fmt.Fprintln(w, "Callbacks:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tEVENTS\tSTATE\tATTEMPTS\tNEXT\tLAST ERROR")
	for _, c := range cbs {
		attempts, next, last := "-", "-", "-"
		if f := c.Failure; f != nil {
			attempts, last = fmt.Sprint(f.Attempts), lastError(f)
			if f.NextRetry != nil {
				next = f.NextRetry.UTC().Format(time.RFC3339)
			}
		}
		if c.Interval != "" && next == "-" {
			next = "every " + c.Interval
		}
		fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.ID, strings.Join(c.Events, ","), c.State, attempts, next, last)
	}
	return tw.Flush()
}

func printEvents(w io.Writer, events []inspect.Event) error {
	if len(events) == 0 {
		return nil
	}
	fmt.Fprintln(w, "Events (newest first):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range events {
		fprintf(tw, "  %s\t%s\t%s\tx%d\t%s\n", e.Last.UTC().Format(time.RFC3339), e.Type, e.Reason, max(e.Count, 1), e.Message)
	}
	return tw.Flush()
}

func age(e inspect.Essence) string {
	if e.Age == "" {
		return ""
	}
	return " " + e.Age + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// short abbreviates a digest, which a hand-edited annotation may make
// shorter than the gateway writes it.
func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}
