package state

// AnnotationsLimit is the API server's limit on the total size of one
// object's annotations, keys and values together: a write past it is
// refused (422) whoever makes it.
const AnnotationsLimit = 256 << 10

// AnnotationsHeadroom is what a state write leaves free of that limit, so
// the user and other writers can still add annotations after it.
const AnnotationsHeadroom = 16 << 10

// Room is how many bytes the value of annotation key may take on an object
// with these annotations (key's current value replaced) so that they all
// stay under AnnotationsLimit minus AnnotationsHeadroom. It is negative when
// the other annotations already take more.
func Room(annotations map[string]string, key string) int {
	used := len(key)
	for k, v := range annotations {
		if k != key {
			used += len(k) + len(v)
		}
	}
	return AnnotationsLimit - AnnotationsHeadroom - used
}

// EncodeWithin encodes s in at most room bytes when it can. Over room it
// first drops the stored essence (keeping its digest: updates then carry no
// old/diff), then the progress messages, and returns the smallest value it
// has even when that does not fit either: the state is what stops the
// gateway from calling handlers again, so it is never given up for its
// size. dropped reports whether anything was left out.
func (s *State) EncodeWithin(room int) (value string, dropped bool, err error) {
	if value, err = s.Encode(); err != nil || len(value) <= room {
		return value, false, err
	}
	for _, shrink := range []func() bool{s.dropEssence, s.dropMessages} {
		if !shrink() {
			continue
		}
		dropped = true
		if value, err = s.Encode(); err != nil || len(value) <= room {
			return value, dropped, err
		}
	}
	return value, dropped, nil
}

// dropEssence drops every essence kept, the handled one and those update
// callbacks saw (their next calls then say oldUnavailable).
func (s *State) dropEssence() bool {
	had := s.Essence != nil
	s.Essence = nil
	if s.Round != nil {
		had = had || s.Round.Essence != nil
		s.Round.Essence = nil
	}
	for _, g := range s.Behind {
		if g != nil {
			had = had || g.Essence != nil
			g.Essence = nil
		}
	}
	return had
}

func (s *State) dropMessages() bool {
	had := false
	for _, first := range s.Progress {
		for _, p := range first.Records() {
			had = had || p.Message != ""
			p.Message = ""
		}
	}
	return had
}
