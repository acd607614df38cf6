package invariant

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/types"
)

// ObjectReport is the verdict on one object of the history.
type ObjectReport struct {
	UID             types.UID
	Namespace, Name string
	// Changes is the (change, callback) pairs owed; Delivered of them
	// reached their callback, Lost did not.
	Changes, Delivered, Lost int
	// Duplicates is successful calls of a change already delivered.
	Duplicates int
	// Strays is calls for an object that carried a change made after the
	// gateway let go of it (see Left).
	Strays  int
	Orphans []string // children that should not exist any more
	Missing []string // children the handler asked for that do not exist
	// Stuck: deleted, but still present (a finalizer holds it); or left
	// the operator, but still carrying its finalizer or state annotation.
	Stuck bool
	// Unconverged: the status lacks the last answer's status, or the
	// object vanished without the test deleting it.
	Unconverged bool
	// Unseen: deleted before any callback saw it (a race the test may
	// lose legitimately; reported, not failed).
	Unseen   bool
	Problems []string
}

func (o ObjectReport) failing() bool {
	return o.Lost > 0 || o.Strays > 0 || len(o.Orphans) > 0 || len(o.Missing) > 0 || o.Stuck || o.Unconverged
}

// Report sums the verdicts. Lost, Strays, Orphans, Missing, Stuck and
// Unconverged must be zero; Duplicates and Unseen are within the guarantee and are
// reported for the scenario to bound.
type Report struct {
	Objects, Changes, Delivered                int
	Lost, Orphans, Missing, Stuck, Unconverged int
	Strays, Duplicates, Unseen                 int
	PerObject                                  []ObjectReport
	UnknownOrphans                             []string // children of parents outside the history
}

func (r *Report) add(o ObjectReport) {
	r.Objects++
	r.Changes += o.Changes
	r.Delivered += o.Delivered
	r.Lost += o.Lost
	r.Duplicates += o.Duplicates
	r.Strays += o.Strays
	r.Orphans += len(o.Orphans)
	r.Missing += len(o.Missing)
	if o.Stuck {
		r.Stuck++
	}
	if o.Unconverged {
		r.Unconverged++
	}
	if o.Unseen {
		r.Unseen++
	}
	r.PerObject = append(r.PerObject, o)
}

// Clean reports whether nothing was lost, called astray, orphaned,
// missing, stuck or unconverged.
func (r Report) Clean() bool {
	return r.Lost == 0 && r.Strays == 0 && r.Orphans == 0 && r.Missing == 0 && r.Stuck == 0 && r.Unconverged == 0
}

// Summary is the counts on one line.
func (r Report) Summary() string {
	return fmt.Sprintf("objects=%d changes=%d delivered=%d lost=%d strays=%d duplicates=%d orphans=%d missing=%d stuck=%d unconverged=%d unseen=%d",
		r.Objects, r.Changes, r.Delivered, r.Lost, r.Strays, r.Duplicates, r.Orphans, r.Missing, r.Stuck, r.Unconverged, r.Unseen)
}

// Table is the summary and one row per object that fails an invariant (or,
// with all true, per object with anything to say), with what went wrong.
func (r Report) Table(all bool) string {
	var b strings.Builder
	b.WriteString(r.Summary() + "\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "OBJECT\tUID\tCHANGES\tDELIVERED\tLOST\tSTRAYS\tDUP\tORPHANS\tMISSING\tSTUCK\tCONVERGED\tPROBLEMS")
	for _, o := range r.PerObject {
		if !o.failing() && !(all && (o.Duplicates > 0 || o.Unseen)) {
			continue
		}
		uid := string(o.UID)
		if len(uid) > 8 {
			uid = uid[:8]
		}
		problems := append([]string(nil), o.Problems...)
		for _, c := range o.Orphans {
			problems = append(problems, "orphan "+c)
		}
		for _, c := range o.Missing {
			problems = append(problems, "missing "+c)
		}
		if o.Unseen {
			problems = append(problems, "deleted before any callback saw it")
		}
		fmt.Fprintf(w, "%s/%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%v\t%v\t%s\n", o.Namespace, o.Name, uid,
			o.Changes, o.Delivered, o.Lost, o.Strays, o.Duplicates, len(o.Orphans), len(o.Missing), o.Stuck, !o.Unconverged,
			strings.Join(problems, "; "))
	}
	_ = w.Flush()
	for _, c := range r.UnknownOrphans {
		b.WriteString("orphan of a parent outside the history: " + c + "\n")
	}
	return b.String()
}
