package state

import (
	"crypto/sha256"
	"encoding/hex"
)

// RequestDigest is what the state keeps of a reconcile-requested-at value:
// a short digest, so that a value of any size (the annotation is free
// text) never makes the state itself too large to write.
func RequestDigest(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:8])
}

// RequestHandled reports whether the gateway already acted on value. A
// state written before digests were kept holds the value itself: that
// request is handled too, so an upgrade does not fire it again.
func (s *State) RequestHandled(value string) bool {
	return s.Requested != "" && (s.Requested == RequestDigest(value) || s.Requested == value)
}
