// Package state is the durable per-object state opgate keeps in one
// annotation per operator (docs/architecture.md): the uid of the object it
// belongs to, the digest of the last handled essence, that essence itself
// compressed under a size cap, the callbacks of the current round that are
// done, and retry progress per callback and event — so a restarted gateway resumes
// rounds and backoff where they were.
package state

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/opgate/opgate/callbacks/essence"
	"github.com/opgate/opgate/internal/jsonenc"
	kjson "sigs.k8s.io/json"
)

// DefaultEssenceCap bounds the compressed essence kept in the annotation;
// the apiserver caps all annotations of an object at 256 KiB together.
const DefaultEssenceCap = 64 << 10

// State is the content of the opgate.dev/state.<operator> annotation.
type State struct {
	// UID is the uid of the object the state was written for. On another
	// object (the annotation copied with a manifest, restored from a
	// backup) the state is not that object's: see DecodeFor.
	UID string `json:"u,omitempty"`
	// Handled is the digest of the essence the last create or update round
	// ended at: every create callback succeeded (a create round stays open
	// until they have), every update callback succeeded or failed
	// permanently. Empty: the object was never handled, so the round is
	// create.
	Handled string `json:"h,omitempty"`
	// Essence is the JSON of that essence, gzip-compressed when it is over
	// plainEssenceMax; nil when it was over the cap or did not fit the
	// object's annotations (then update requests carry no old/diff).
	Essence []byte `json:"e,omitempty"`
	// HandledAt is when the round that recorded Handled ended (to the
	// second), so that `gateway status` can tell the essence's age.
	HandledAt *time.Time `json:"t,omitempty"`
	// Round is the create/update/resume round in progress, if any.
	Round *Round `json:"r,omitempty"`
	// Progress holds retry state per callback id, only while it failed:
	// one record per event whose call failed (see Progress.Others).
	Progress map[string]*Progress `json:"p,omitempty"`
	// Requested is the digest (RequestDigest) of the last value of the
	// reconcile-requested-at annotation the gateway acted on: the same
	// value never triggers twice, also after a restart.
	Requested string `json:"q,omitempty"`
	// Behind are update callbacks whose last call was for an essence that
	// is not the handled one: an update round a change dropped after they
	// succeeded in it. Each is owed the essence now, also when it is the
	// handled one again (the change taken back), and its old is the one it
	// saw. Empty once an update round ends. While a create round is open
	// it holds, per essence, the round's done callbacks that acted on it
	// (NoteActed), from which the round's end tells what each is owed.
	Behind []*Seen `json:"b,omitempty"`
	// Orphan: the object is being deleted with propagationPolicy Orphan,
	// as the gateway saw by the orphan finalizer, which the garbage
	// collector removes once it has orphaned the dependents it knows: a
	// restarted gateway that no longer sees it still keeps the children
	// it tracks by label.
	Orphan bool `json:"o,omitempty"`
}

// Seen is an essence update callbacks acted on in a round that was then
// dropped.
type Seen struct {
	IDs    []string `json:"i"`
	Digest string   `json:"d"`
	// Essence is kept as State.Essence is; nil when it was not (their next
	// call then says oldUnavailable).
	Essence []byte `json:"e,omitempty"`
}

// Old returns the essence the callbacks saw, nil when it was not kept.
func (s *Seen) Old() (map[string]any, error) { return readEssence(s.Essence) }

// SeenBy returns what callback id last acted on among behind (a State's
// Behind), nil when that is the handled essence.
func SeenBy(behind []*Seen, id string) *Seen {
	for _, g := range behind {
		if g != nil && slices.Contains(g.IDs, id) {
			return g
		}
	}
	return nil
}

// BehindAfterDrop is Behind once update round r is dropped: r's done
// callbacks saw r's essence, whatever they saw before. An essence that is
// the handled one again owes nothing to those who saw it. s is unchanged.
func (s *State) BehindAfterDrop(r *Round) []*Seen {
	var out []*Seen
	for _, g := range s.Behind {
		if g == nil || g.Digest == s.Handled {
			continue
		}
		ids := slices.DeleteFunc(slices.Clone(g.IDs), r.IsDone)
		if len(ids) > 0 {
			out = append(out, &Seen{IDs: ids, Digest: g.Digest, Essence: g.Essence})
		}
	}
	// Done also lists those that failed for good at the round's essence:
	// they never acted on it, so they owe nothing when it goes.
	acted := slices.DeleteFunc(slices.Clone(r.Done), func(id string) bool {
		pr := s.ProgressFor(id, r.Event)
		return pr != nil && pr.Failed && pr.Digest == r.Digest
	})
	if len(acted) > 0 && r.Digest != s.Handled {
		out = append(out, &Seen{IDs: acted, Digest: r.Digest, Essence: r.Essence})
	}
	return out
}

// KeepBehind keeps in Behind only the callbacks keep reports (those the
// operator still has).
func (s *State) KeepBehind(keep func(id string) bool) {
	s.Behind = slices.DeleteFunc(s.Behind, func(g *Seen) bool {
		if g != nil {
			g.IDs = slices.DeleteFunc(g.IDs, func(id string) bool { return !keep(id) })
		}
		return g == nil || len(g.IDs) == 0
	})
	if len(s.Behind) == 0 {
		s.Behind = nil
	}
}

// NoteActed records in Behind, for create round r, the essence each of its
// done callbacks acted on, oldest first: one no group holds (done in this
// pass, or by a gateway that kept no groups) acted on e, the essence now,
// whose digest is digest. A callback no longer done leaves its group (a
// refused status took its success back). Groups are replaced, not changed:
// a pass may restore the Behind it had before.
func (s *State) NoteActed(r *Round, digest string, e map[string]any, capBytes int) error {
	var out []*Seen
	var now *Seen
	for _, g := range s.Behind {
		if g == nil {
			continue
		}
		ids := slices.DeleteFunc(slices.Clone(g.IDs), func(id string) bool { return !r.IsDone(id) })
		if len(ids) == 0 {
			continue
		}
		out = append(out, &Seen{IDs: ids, Digest: g.Digest, Essence: g.Essence})
		if g.Digest == digest {
			now = out[len(out)-1]
		}
	}
	for _, id := range r.Done {
		if SeenBy(out, id) != nil {
			continue
		}
		if now == nil {
			_, kept, err := keep(e, capBytes)
			if err != nil {
				return err
			}
			now = &Seen{Digest: digest, Essence: kept}
			out = append(out, now)
		}
		now.IDs = append(now.IDs, id)
	}
	s.Behind = out
	return nil
}

// Round is a set of callbacks called for one event, one at a time.
type Round struct {
	Event string   `json:"ev"`
	Done  []string `json:"done,omitempty"`
	// Digest is the essence an update or resume round began at. An update
	// round's Done callbacks saw that essence: when it changes, the round
	// starts over so that they see the new one too. A resume round stops
	// holding the update back when it changes. Empty in rounds written
	// before it was kept: they run on as they were.
	Digest string `json:"d,omitempty"`
	// Essence is the essence at Digest, kept as State.Essence is once an
	// update round is left open with callbacks done: should a change drop
	// the round, their next call carries it as old (see State.Behind).
	Essence []byte `json:"e,omitempty"`
}

// IsDone reports whether callback id finished in this round.
func (r *Round) IsDone(id string) bool {
	for _, d := range r.Done {
		if d == id {
			return true
		}
	}
	return false
}

// Progress is the retry state of one callback's calls for one event on one
// object. The record kept under the callback's id is its first failing
// event's; Others holds those of its other events failing at the same time.
type Progress struct {
	Attempts int       `json:"a"`
	First    time.Time `json:"f"`
	Next     time.Time `json:"n,omitzero"`
	// Interrupted counts the Attempts that a shutdown of the gateway cut
	// off: no failures of the handler, they count towards neither
	// maxAttempts nor the backoff. Absent in records written before it
	// was kept: every attempt counts, as it did.
	Interrupted int `json:"i,omitempty"`
	// Failed marks a permanent failure at essence digest Digest: no more
	// calls for the event until the essence changes. A temporary failure
	// records Digest too: a change of the essence ends its backoff wait.
	Failed  bool   `json:"x,omitempty"`
	Digest  string `json:"d,omitempty"`
	Message string `json:"m,omitempty"`
	// Reason is the failure's reason (HandlerError, InvalidResponse, ...),
	// as in its Warning Event and the parent's Reconciled condition.
	Reason string `json:"c,omitempty"`
	// Event is the event whose call failed. Each event counts its own
	// attempts and fails permanently on its own: a sync failing now and
	// then must not take over (or start afresh) the count of an update
	// failing for good, nor a delete begin at its update's. The backoff
	// wait is shared, but for the delete event's (see Holds). Empty in
	// records written before it was kept: they count for every event.
	Event string `json:"v,omitempty"`
	// Others are the records of the callback's other events, each with its
	// Event and none of its own Others; only in the record kept under the
	// callback's id. A gateway that kept one record per callback reads the
	// first event's record only.
	Others []*Progress `json:"o,omitempty"`
}

// Decode reads an annotation value; an empty value is a zero State.
func Decode(value string) (*State, error) {
	s := &State{}
	if value == "" {
		return s, nil
	}
	if err := json.Unmarshal([]byte(value), s); err != nil {
		return nil, fmt.Errorf("decode state annotation: %w", err)
	}
	return s, nil
}

// DecodeFor reads the annotation of the object with uid. A state written
// for another object is none: the object is new to the gateway (create
// runs) and the first write replaces the state; foreign reports it. A state
// without a uid (written before the gateway recorded it) is adopted. The
// state returned records uid either way, so the next write carries it.
func DecodeFor(value, uid string) (st *State, foreign bool, err error) {
	st, err = Decode(value)
	if err != nil {
		return nil, false, err
	}
	if st.UID != "" && st.UID != uid {
		st, foreign = &State{}, true
	}
	st.UID = uid
	return st, foreign, nil
}

// Encode writes the annotation value.
func (s *State) Encode() (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode state annotation: %w", err)
	}
	return string(b), nil
}

// plainEssenceMax is the largest essence kept as plain JSON. Below it gzip
// saves little or nothing (its frame alone is 18 bytes; most specs are a
// few fields), and each compression holds a pooled writer of ~800 KB.
const plainEssenceMax = 512

// SetHandled records the essence e as handled, compressed when it is large,
// unless it is larger than capBytes as kept.
func (s *State) SetHandled(e map[string]any, capBytes int) error {
	digest, kept, err := keep(e, capBytes)
	if err != nil {
		return err
	}
	s.Handled, s.Essence = digest, kept
	return nil
}

// KeepRoundEssence keeps e, the essence the open round is at, in the round
// (see Round.Essence).
func (s *State) KeepRoundEssence(e map[string]any, capBytes int) error {
	_, kept, err := keep(e, capBytes)
	if err != nil {
		return err
	}
	s.Round.Essence = kept
	return nil
}

// keep returns e's digest and e as the state keeps it: its JSON,
// compressed when it is large; nil when that is larger than capBytes.
func keep(e map[string]any, capBytes int) (digest string, kept []byte, err error) {
	raw, err := jsonenc.Marshal(e)
	if err != nil {
		return "", nil, fmt.Errorf("marshal essence: %w", err)
	}
	kept = raw
	if len(raw) > plainEssenceMax {
		var buf bytes.Buffer
		if err := compress(&buf, raw); err != nil {
			return "", nil, err
		}
		kept = buf.Bytes()
	}
	if len(kept) > capBytes {
		kept = nil
	}
	return essence.DigestJSON(raw), kept, nil
}

// gzipWriters are reused across round ends: a new flate writer allocates
// and clears about 800 KB, far more than the essence it compresses.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// compress gzips raw into buf. BestSpeed: essences are small JSON, where
// it compresses nearly as well as the best level, and unlike levels 2–9
// its Reset does not clear a 640 KB hash table.
func compress(buf *bytes.Buffer, raw []byte) error {
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(buf)
	if _, err := zw.Write(raw); err != nil {
		return fmt.Errorf("compress essence: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress essence: %w", err)
	}
	return nil
}

// HandledEssence returns the last handled essence, or nil when it was not
// kept (never handled, or over the size cap).
func (s *State) HandledEssence() (map[string]any, error) { return readEssence(s.Essence) }

// readEssence reads an essence as keep kept it; nil when it was not.
func readEssence(kept []byte) (map[string]any, error) {
	if len(kept) == 0 {
		return nil, nil
	}
	raw := kept
	if isGzip(raw) { // JSON starts with '{'
		var err error
		if raw, err = decompress(raw); err != nil {
			return nil, fmt.Errorf("decompress essence: %w", err)
		}
	}
	// Integers as the object's own decoding keeps them (int64): as float64,
	// one past 2^53 (an id, a byte count) would come back as another number,
	// in every update's old and diff and to every when.fields filter.
	var out map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &out); err != nil {
		return nil, fmt.Errorf("decode essence: %w", err)
	}
	return out, nil
}

// gzipReaders are reused across reads of handled essences (every update
// decision): a new reader allocates a 32 KB window for a few hundred bytes.
var gzipReaders sync.Pool

func decompress(b []byte) ([]byte, error) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(b))
	} else {
		err = zr.Reset(bytes.NewReader(b))
	}
	if err != nil {
		return nil, fmt.Errorf("decompress essence: %w", err)
	}
	defer gzipReaders.Put(zr)
	raw, err := io.ReadAll(io.LimitReader(zr, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("decompress essence: %w", err)
	}
	return raw, nil
}

// isGzip reports whether b starts with gzip's magic bytes (RFC 1952).
func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// ProgressFor returns the record of callback id's calls for event (its
// own, or one written before events were kept), nil when there is none.
func (s *State) ProgressFor(id, event string) *Progress {
	return s.Progress[id].of(event)
}

// ProgressOf returns the record of callback id's calls for event, creating
// it. A record written before events were kept becomes event's: the call
// that fails now continued it (ProgressFor gave it for event).
func (s *State) ProgressOf(id, event string) *Progress {
	first := s.Progress[id]
	if r := first.of(event); r != nil {
		r.Event = event
		return r
	}
	r := &Progress{Event: event}
	switch {
	case first != nil:
		first.Others = append(first.Others, r)
	case s.Progress == nil:
		s.Progress = map[string]*Progress{id: r}
	default:
		s.Progress[id] = r
	}
	return r
}

// Records returns the records of p's callback: p and its Others (but a
// null one of a hand-edited annotation).
func (p *Progress) Records() []*Progress {
	if p == nil {
		return nil
	}
	out := make([]*Progress, 1, 1+len(p.Others))
	out[0] = p
	for _, r := range p.Others {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// of returns the record of event among the records of p's callback: its
// own, or one written before events were kept; nil when there is none.
func (p *Progress) of(event string) *Progress {
	if p.For(event) {
		return p
	}
	if p != nil {
		for _, r := range p.Others {
			if r.For(event) {
				return r
			}
		}
	}
	return nil
}

// For reports whether p records a call of event (or is a record written
// before events were kept): only such a record counts the attempts of
// event's calls, is ended by event's success, or makes a sync due as a
// retry.
func (p *Progress) For(event string) bool {
	return p != nil && (p.Event == "" || p.Event == event)
}

// Holds reports whether p's backoff wait holds a call of event back: p is
// event's record or another event's of the same callback, but for the
// delete event, which neither waits for the others nor holds them. A
// handler that is down then makes a callback's events wait out their
// backoffs together, rather than each failure of one letting the other
// run at once; each still counts its own attempts.
func (p *Progress) Holds(event string) bool {
	return p.For(event) || p != nil && p.Event != deleteEvent && event != deleteEvent
}

// deleteEvent is spec.EventDelete, which this package does not import.
const deleteEvent = "delete"

// Clear forgets every record of callback id.
func (s *State) Clear(id string) {
	delete(s.Progress, id)
	if len(s.Progress) == 0 {
		s.Progress = nil
	}
}

// ClearIf forgets the records of callback id that drop reports.
func (s *State) ClearIf(id string, drop func(*Progress) bool) {
	var kept []*Progress
	for _, r := range s.Progress[id].Records() {
		if !drop(r) {
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 {
		s.Clear(id)
		return
	}
	first := kept[0]
	first.Others = nil
	if len(kept) > 1 {
		first.Others = kept[1:]
	}
	s.Progress[id] = first
}

// ClearFailed forgets callback id's permanent failure of event (a record
// written before events were kept counts for it). Its other events'
// permanent failures stay: each stops its own event's calls until the
// essence changes.
func (s *State) ClearFailed(id, event string) {
	s.ClearIf(id, func(r *Progress) bool { return r.Failed && r.For(event) })
}
