package callbacks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a delivery. The webhook-* ones follow Standard Webhooks
// (https://www.standardwebhooks.com): webhook-id is the delivery's UID and
// stays the same across retries, webhook-timestamp is Unix seconds, and
// webhook-signature is a space-separated list of "v1,<base64 HMAC-SHA256>".
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
	HeaderIdempotencyKey   = "Idempotency-Key"
)

// DefaultTolerance is how far a webhook-timestamp may be from the verifier's
// clock, either way, before the delivery is refused as a replay or as forged
// for later use.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify; test for them with errors.Is.
var (
	ErrMissingHeaders   = errors.New("webhook-id, webhook-timestamp or webhook-signature header missing or malformed")
	ErrInvalidSignature = errors.New("no webhook-signature matches the body")
	ErrTimestampTooOld  = errors.New("webhook-timestamp is too old")
	ErrTimestampTooNew  = errors.New("webhook-timestamp is too far in the future")
)

// secretPrefix marks a secret written the Standard Webhooks way: the key
// base64-encoded after "whsec_".
const secretPrefix = "whsec_"

// signingKey returns the HMAC key a secret stands for: the base64-decoded
// rest of a "whsec_" secret, or the raw bytes otherwise. A "whsec_" secret
// whose rest is not base64 is taken raw; since Sign and Verifier share this
// rule, the two sides of opgate still agree.
func signingKey(secret []byte) []byte {
	rest, ok := bytes.CutPrefix(secret, []byte(secretPrefix))
	if !ok {
		return secret
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(rest)))
	n, err := base64.StdEncoding.Decode(key, rest)
	if err != nil || n == 0 {
		return secret
	}
	return key[:n]
}

// Sign returns the webhook-signature header value of a delivery:
// "v1,<base64 HMAC-SHA256 of id.ts.body>" with ts in Unix seconds.
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(signatureMAC(signingKey(secret), id, ts.Unix(), body))
}

func signatureMAC(key []byte, id string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Secret is the shared secret: raw bytes, or "whsec_" and base64.
	Secret []byte
	// Tolerance is the replay window; DefaultTolerance when zero.
	Tolerance time.Duration
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
}

// Verifier checks the signature of deliveries on the handler side.
type Verifier struct {
	key       []byte
	tolerance time.Duration
	now       func() time.Time
}

// NewVerifier validates and defaults cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook verifier: secret is empty")
	}
	if cfg.Tolerance < 0 {
		return nil, fmt.Errorf("webhook verifier: tolerance %s is negative", cfg.Tolerance)
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Verifier{key: signingKey(cfg.Secret), tolerance: cfg.Tolerance, now: cfg.Clock}, nil
}

// Verify checks that body was signed with the verifier's secret within the
// replay window. Any one matching v1 signature is enough, so a sender can
// sign with an old and a new secret while the secret is rotated.
func (v *Verifier) Verify(header http.Header, body []byte) error {
	id := header.Get(HeaderWebhookID)
	ts := header.Get(HeaderWebhookTimestamp)
	signatures := header.Get(HeaderWebhookSignature)
	if id == "" || ts == "" || signatures == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp %q is not Unix seconds", ErrMissingHeaders, ts)
	}
	// Compare in seconds: time.Unix of a forged huge value would overflow
	// a Duration.
	now := v.now().Unix()
	window := int64(v.tolerance / time.Second)
	switch {
	case unix < now-window:
		return ErrTimestampTooOld
	case unix > now+window:
		return ErrTimestampTooNew
	}
	want := signatureMAC(v.key, id, unix, body)
	for _, s := range strings.Fields(signatures) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue // another scheme (v1a, ...) we do not speak
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrInvalidSignature
}
