package callbacks

import (
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	secret := []byte("s3cret")
	whsec := []byte("whsec_" + base64.StdEncoding.EncodeToString(secret))
	body := []byte(`{"uid":"d1"}`)
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		for k, v := range map[string]string{
			HeaderWebhookID:        id,
			HeaderWebhookTimestamp: strconv.FormatInt(ts.Unix(), 10),
			HeaderWebhookSignature: sig,
		} {
			if v != "" {
				h.Set(k, v)
			}
		}
		return h
	}
	with := func(h http.Header, key, value string) http.Header {
		h = h.Clone()
		h.Set(key, value)
		return h
	}
	sign := func(secret []byte, id string, ts time.Time) string { return mustSign(t, secret, id, ts, body) }
	good := sign(secret, "d1", now)

	tests := []struct {
		name           string
		verifierSecret []byte
		header         http.Header
		body           []byte
		want           error
	}{
		{"good signature", secret, headers("d1", now, good), body, nil},
		{"tampered body", secret, headers("d1", now, good), []byte(`{"uid":"d2"}`), ErrInvalidSignature},
		{"other id than signed", secret, headers("d2", now, good), body, ErrInvalidSignature},
		{"wrong secret", []byte("other"), headers("d1", now, good), body, ErrInvalidSignature},
		{"whsec secret on the verifier matches the raw key", whsec, headers("d1", now, good), body, nil},
		{"whsec secret on the signer matches the raw key", secret, headers("d1", now, sign(whsec, "d1", now)), body, nil},
		{"just inside the window", secret, headers("d1", now.Add(-5*time.Minute), sign(secret, "d1", now.Add(-5*time.Minute))), body, nil},
		{"too old", secret, headers("d1", now.Add(-6*time.Minute), sign(secret, "d1", now.Add(-6*time.Minute))), body, ErrTimestampTooOld},
		{"too far in the future", secret, headers("d1", now.Add(6*time.Minute), sign(secret, "d1", now.Add(6*time.Minute))), body, ErrTimestampTooNew},
		{"missing id", secret, headers("", now, good), body, ErrMissingHeaders},
		{"missing signature", secret, headers("d1", now, ""), body, ErrMissingHeaders},
		{"missing timestamp", secret, with(headers("d1", now, good), HeaderWebhookTimestamp, ""), body, ErrMissingHeaders},
		{"timestamp not in seconds", secret, with(headers("d1", now, good), HeaderWebhookTimestamp, now.Format(time.RFC3339)), body, ErrMissingHeaders},
		{"one of several signatures matches", secret, headers("d1", now, "v1,bm9wZQ== v1a,"+good[3:]+" "+good+" v1,!!notbase64"), body, nil},
		{"none of several signatures matches", secret, headers("d1", now, "v1,bm9wZQ== "+sign([]byte("old"), "d1", now)), body, ErrInvalidSignature},
		{"the right MAC under another scheme is refused", secret, headers("d1", now, "v1a,"+good[3:]), body, ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(VerifierConfig{Secret: tt.verifierSecret, Clock: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(tt.header, tt.body); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignMatchesTheStandardWebhooksFormat(t *testing.T) {
	// HMAC-SHA256("key", "id.0.body"), computed independently with
	// `printf 'id.0.body' | openssl dgst -sha256 -hmac key -binary | base64`.
	const want = "v1,XzfXrJbuAm2AhZmIlCud2bHOOzuv7SFS+d2C1y03L+A="
	if got := mustSign(t, []byte("key"), "id", time.Unix(0, 0), []byte("body")); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  VerifierConfig
	}{
		{"empty secret", VerifierConfig{}},
		{"negative tolerance", VerifierConfig{Secret: []byte("s"), Tolerance: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(tt.cfg); err == nil {
				t.Error("NewVerifier accepted the config")
			}
		})
	}
}

func mustSign(t *testing.T, secret []byte, id string, ts time.Time, body []byte) string {
	t.Helper()
	sig, err := Sign(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// rawHeaders builds delivery headers with the timestamp text given, signed
// over that same text with key.
func rawHeaders(id, ts string, key, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, ts)
	h.Set(HeaderWebhookSignature, "v1,"+base64.StdEncoding.EncodeToString(signatureMAC(key, id, ts, body)))
	return h
}

func TestVerifierSignsTheTimestampHeaderAsSent(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	secret := []byte("s3cret")
	body := []byte(`{"uid":"d1"}`)
	unix := strconv.FormatInt(now.Unix(), 10)
	canonical := func(h http.Header) http.Header {
		h.Set(HeaderWebhookSignature, mustSign(t, secret, "d1", now, body))
		return h
	}
	tests := []struct {
		name   string
		header http.Header
		want   error
	}{
		{"leading zero signed as sent", rawHeaders("d1", "0"+unix, secret, body), nil},
		{"plus sign signed as sent", rawHeaders("d1", "+"+unix, secret, body), nil},
		{"plus sign sent, canonical number signed", canonical(rawHeaders("d1", "+"+unix, secret, body)), ErrInvalidSignature},
		{"leading zero sent, canonical number signed", canonical(rawHeaders("d1", "0"+unix, secret, body)), ErrInvalidSignature},
	}
	v, err := NewVerifier(VerifierConfig{Secret: secret, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := v.Verify(tt.header, body); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifierAcceptsEverySecretItHolds(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"uid":"d1"}`)
	previous := []byte("whsec_" + base64.StdEncoding.EncodeToString([]byte("previous-key")))
	next := []byte("next-raw-key")
	v, err := NewVerifier(VerifierConfig{Secret: next, Secrets: [][]byte{previous}, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		signer []byte
		want   error
	}{
		{"signed with the new secret", next, nil},
		{"signed with the previous secret", previous, nil},
		{"signed with a secret the verifier does not hold", []byte("retired"), ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set(HeaderWebhookID, "d1")
			h.Set(HeaderWebhookTimestamp, FormatTimestamp(now))
			h.Set(HeaderWebhookSignature, mustSign(t, tt.signer, "d1", now, body))
			if err := v.Verify(h, body); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := NewVerifier(VerifierConfig{Secrets: [][]byte{previous}}); err != nil {
		t.Errorf("NewVerifier with Secrets only: %v", err)
	}
}

func TestVerifierToleranceIsConfigurable(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	secret := []byte("s3cret")
	body := []byte(`{}`)
	v, err := NewVerifier(VerifierConfig{Secret: secret, Tolerance: 30 * time.Second, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		offset time.Duration
		want   error
	}{
		{-20 * time.Second, nil},
		{20 * time.Second, nil},
		{-time.Minute, ErrTimestampTooOld},
		{time.Minute, ErrTimestampTooNew},
	} {
		at := now.Add(tt.offset)
		h := rawHeaders("d1", FormatTimestamp(at), secret, body)
		if err := v.Verify(h, body); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("signed %s from now: Verify = %v, want %v", tt.offset, err, tt.want)
		}
	}
}

// webhook-timestamp is whole seconds: a tolerance under a second is one
// second, not zero, and a tolerance is never cut to fewer seconds than it
// covers.
func TestVerifierCountsToleranceInWholeSecondsRoundedUp(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 700_000_000, time.UTC) // stamped 10:00:00 by a sender in step
	secret := []byte("s3cret")
	body := []byte(`{}`)
	tests := []struct {
		tolerance time.Duration
		offset    time.Duration // of the timestamp from now's second
		want      error
	}{
		{500 * time.Millisecond, 0, nil},
		{500 * time.Millisecond, -time.Second, nil},
		{500 * time.Millisecond, time.Second, nil},
		{500 * time.Millisecond, -2 * time.Second, ErrTimestampTooOld},
		{1500 * time.Millisecond, -2 * time.Second, nil},
		{1500 * time.Millisecond, -3 * time.Second, ErrTimestampTooOld},
		{time.Second, -time.Second, nil},
		{time.Second, 2 * time.Second, ErrTimestampTooNew},
		{math.MaxInt64, -100 * 365 * 24 * time.Hour, nil}, // the largest tolerance does not wrap
	}
	for _, tt := range tests {
		v, err := NewVerifier(VerifierConfig{Secret: secret, Tolerance: tt.tolerance, Clock: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		at := now.Truncate(time.Second).Add(tt.offset)
		if err := v.Verify(rawHeaders("d1", FormatTimestamp(at), secret, body), body); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("tolerance %s, stamped %s from now's second: Verify = %v, want %v", tt.tolerance, tt.offset, err, tt.want)
		}
	}
}

func TestWhsecSecretThatIsNotBase64IsAnError(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, secret := range []string{"whsec_not*base64!", "whsec_", "whsec_c2VjcmV0YQ"} {
		t.Run(secret, func(t *testing.T) {
			_, verr := NewVerifier(VerifierConfig{Secret: []byte(secret)})
			_, serr := Sign([]byte(secret), "d1", now, []byte("{}"))
			for name, err := range map[string]error{"NewVerifier": verr, "Sign": serr} {
				if !errors.Is(err, ErrInvalidSecret) {
					t.Errorf("%s = %v, want ErrInvalidSecret", name, err)
					continue
				}
				if rest := secret[len("whsec_"):]; rest != "" && strings.Contains(err.Error(), rest) {
					t.Errorf("%s error %q quotes the secret", name, err)
				}
			}
		})
	}
	// Another rotating secret that is invalid is named by its position.
	_, err := NewVerifier(VerifierConfig{Secret: []byte("good"), Secrets: [][]byte{[]byte("whsec_@@")}})
	if err == nil || !strings.Contains(err.Error(), "secret 2 of 2") {
		t.Errorf("NewVerifier = %v, want an error naming secret 2 of 2", err)
	}
}

// A Secret made from a file (kubectl create secret --from-file) ends in the
// file's newline; the gateway signs with the Secret's bytes and handlers
// read the same Secret mounted as a file, so every side drops surrounding
// ASCII whitespace before taking the key.
func TestSigningKeyIgnoresSurroundingWhitespace(t *testing.T) {
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("decoded-key"))
	tests := []struct {
		name, secret, want string
	}{
		{"a raw secret as written", "raw-key", "raw-key"},
		{"a raw secret with a final newline", "raw-key\n", "raw-key"},
		{"a raw secret with a final CRLF", "raw-key\r\n", "raw-key"},
		{"a raw secret between spaces and tabs", " \t raw-key \v\f", "raw-key"},
		{"a raw secret keeps its inner whitespace", "raw key\n", "raw key"},
		{"a whsec secret with a final newline", whsec + "\n", "decoded-key"},
		{"a hex secret from openssl rand -hex", "6f70656e73736c2072616e64\n", "6f70656e73736c2072616e64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := SigningKey([]byte(tt.secret))
			if err != nil || string(key) != tt.want {
				t.Fatalf("SigningKey = %q, %v; want %q", key, err, tt.want)
			}
			// Sign and the Verifier take the key the same way.
			now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			body := []byte(`{"uid":"d1"}`)
			v, err := NewVerifier(VerifierConfig{Secret: []byte(tt.secret), Clock: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			h := rawHeaders("d1", FormatTimestamp(now), []byte(tt.want), body)
			if err := v.Verify(h, body); err != nil {
				t.Errorf("a verifier of %q refuses a signature made with %q: %v", tt.secret, tt.want, err)
			}
			if got, want := mustSign(t, []byte(tt.secret), "d1", now, body), h.Get(HeaderWebhookSignature); got != want {
				t.Errorf("Sign with %q = %s, want the signature of %q, %s", tt.secret, got, tt.want, want)
			}
		})
	}
}

func TestSigningKeyRefusesSecretsOtherSidesWouldRefuse(t *testing.T) {
	for name, secret := range map[string]string{
		"only whitespace":                    " \n\t",
		"a whsec secret broken by a newline": "whsec_c2Vj\ncmV0",
		"a whsec secret broken by a CR":      "whsec_c2Vj\rcmV0",
		"whsec_ and a newline":               "whsec_\n",
	} {
		t.Run(name, func(t *testing.T) {
			if key, err := SigningKey([]byte(secret)); !errors.Is(err, ErrInvalidSecret) {
				t.Errorf("SigningKey = %q, %v; want ErrInvalidSecret", key, err)
			}
		})
	}
}

func TestCanonicalTimestampHeaderIsTheHeadersKey(t *testing.T) {
	if got := http.CanonicalHeaderKey(HeaderWebhookTimestamp); got != canonicalTimestampHeader {
		t.Errorf("http.CanonicalHeaderKey(%q) = %q, want %q", HeaderWebhookTimestamp, got, canonicalTimestampHeader)
	}
}
