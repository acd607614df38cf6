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

// ErrInvalidSecret is returned for a secret no key can come from: empty, or
// "whsec_" followed by something that is not base64.
var ErrInvalidSecret = errors.New("invalid webhook secret")

// secretSpace is the whitespace trimmed from around a secret: ASCII's, as
// Python's bytes.strip() trims it, so that every side agrees byte for byte.
const secretSpace = " \t\n\v\f\r"

// SigningKey returns the HMAC key a secret stands for: the base64-decoded
// rest of a "whsec_" secret, or the raw bytes otherwise, in both cases
// without surrounding ASCII whitespace. A Secret created from a file
// (kubectl create secret --from-file) or a file written by hand usually
// ends in a newline that is not part of the key; the gateway, gateway call,
// the Verifier and the example handlers all read a secret through this one
// rule, so none signs with the newline while another verifies without it.
// A "whsec_" secret whose rest is not strict standard base64 (no line
// breaks inside, which Go's decoder would skip and others refuse) is an
// error rather than a raw key: the other side, following Standard Webhooks,
// would decode it and never agree. The error never quotes the secret.
func SigningKey(secret []byte) ([]byte, error) {
	secret = bytes.Trim(secret, secretSpace)
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: it is empty", ErrInvalidSecret)
	}
	rest, ok := bytes.CutPrefix(secret, []byte(secretPrefix))
	if !ok {
		return secret, nil
	}
	if i := bytes.IndexAny(rest, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("%w: the part after %q has a line break at byte %d", ErrInvalidSecret, secretPrefix, i)
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(rest)))
	n, err := base64.StdEncoding.Decode(key, rest)
	if err != nil {
		// The CorruptInputError offset says where, without the content.
		return nil, fmt.Errorf("%w: the part after %q is not standard base64 (%v)", ErrInvalidSecret, secretPrefix, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: %q is followed by no key", ErrInvalidSecret, secretPrefix)
	}
	return key[:n], nil
}

// Sign returns the webhook-signature header value of a delivery:
// "v1,<base64 HMAC-SHA256 of id.ts.body>" with ts in Unix seconds, written
// as the webhook-timestamp header must carry it (FormatTimestamp). The error
// is ErrInvalidSecret's.
func Sign(secret []byte, id string, ts time.Time, body []byte) (string, error) {
	key, err := SigningKey(secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(signatureMAC(key, id, FormatTimestamp(ts), body)), nil
}

// FormatTimestamp writes t as the webhook-timestamp header: Unix seconds in
// decimal.
func FormatTimestamp(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// signatureMAC signs the timestamp as the header text, never a re-formatted
// number: "+17" and "017" parse as 17 but are other signed content.
func signatureMAC(key []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Secret is the shared secret: raw bytes, or "whsec_" and base64;
	// surrounding ASCII whitespace is not part of it (see SigningKey).
	Secret []byte
	// Secrets are more secrets accepted alongside Secret, as while one is
	// rotated: a delivery signed with any of them passes. Either Secret or
	// Secrets may be left empty, not both.
	Secrets [][]byte
	// Tolerance is the replay window, either way; DefaultTolerance when
	// zero. It is counted in whole seconds, rounded up, as webhook-timestamp
	// is written.
	Tolerance time.Duration
	// Clock returns the current time; time.Now when nil.
	Clock func() time.Time
}

// Verifier checks the signature of deliveries on the handler side.
type Verifier struct {
	keys      [][]byte
	tolerance time.Duration
	now       func() time.Time
}

// NewVerifier validates and defaults cfg. The error names which secret is
// invalid by its position, never by its content.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	secrets := cfg.Secrets
	if len(cfg.Secret) > 0 {
		secrets = append([][]byte{cfg.Secret}, secrets...)
	}
	if len(secrets) == 0 {
		return nil, errors.New("webhook verifier: secret is empty")
	}
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		key, err := SigningKey(s)
		if err != nil {
			return nil, fmt.Errorf("webhook verifier: secret %d of %d: %w", i+1, len(secrets), err)
		}
		keys = append(keys, key)
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
	return &Verifier{keys: keys, tolerance: cfg.Tolerance, now: cfg.Clock}, nil
}

// Verify checks that body was signed with the verifier's secret within the
// replay window. Any one matching v1 signature, under any of the verifier's
// secrets, is enough, so either side can hold an old and a new secret while
// the secret is rotated. The signed content is the webhook-timestamp header
// exactly as sent.
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
	// a Duration. The window is rounded up to whole seconds, as the
	// timestamp is written: a tolerance under a second must not become
	// zero, which refused every request not stamped in the verifier's
	// current second.
	now := v.now().Unix()
	window := int64(v.tolerance / time.Second)
	if v.tolerance%time.Second != 0 { // not by adding first: that overflows near the largest Duration
		window++
	}
	switch {
	case unix < now-window:
		return ErrTimestampTooOld
	case unix > now+window:
		return ErrTimestampTooNew
	}
	wants := make([][]byte, len(v.keys))
	for i, key := range v.keys {
		wants[i] = signatureMAC(key, id, ts, body)
	}
	for _, s := range strings.Fields(signatures) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue // another scheme (v1a, ...) we do not speak
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		for _, want := range wants {
			if hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return ErrInvalidSignature
}
