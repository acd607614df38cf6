package callbacks

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
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
	good := Sign(secret, "d1", now, body)

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
		{"whsec secret on the signer matches the raw key", secret, headers("d1", now, Sign(whsec, "d1", now, body)), body, nil},
		{"just inside the window", secret, headers("d1", now.Add(-5*time.Minute), Sign(secret, "d1", now.Add(-5*time.Minute), body)), body, nil},
		{"too old", secret, headers("d1", now.Add(-6*time.Minute), Sign(secret, "d1", now.Add(-6*time.Minute), body)), body, ErrTimestampTooOld},
		{"too far in the future", secret, headers("d1", now.Add(6*time.Minute), Sign(secret, "d1", now.Add(6*time.Minute), body)), body, ErrTimestampTooNew},
		{"missing id", secret, headers("", now, good), body, ErrMissingHeaders},
		{"missing signature", secret, headers("d1", now, ""), body, ErrMissingHeaders},
		{"missing timestamp", secret, with(headers("d1", now, good), HeaderWebhookTimestamp, ""), body, ErrMissingHeaders},
		{"timestamp not in seconds", secret, with(headers("d1", now, good), HeaderWebhookTimestamp, now.Format(time.RFC3339)), body, ErrMissingHeaders},
		{"one of several signatures matches", secret, headers("d1", now, "v1,bm9wZQ== v1a,"+good[3:]+" "+good+" v1,!!notbase64"), body, nil},
		{"none of several signatures matches", secret, headers("d1", now, "v1,bm9wZQ== "+Sign([]byte("old"), "d1", now, body)), body, ErrInvalidSignature},
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
	if got := Sign([]byte("key"), "id", time.Unix(0, 0), []byte("body")); got != want {
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
