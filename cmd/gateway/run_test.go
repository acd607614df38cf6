package main

import "testing"

func TestParseRecordRef(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "", want: "/"},
		{in: "ops/opgate-gateway", want: "ops/opgate-gateway"},
		{in: "opgate-gateway", wantErr: true},
		{in: "/name", wantErr: true},
		{in: "ns/", wantErr: true},
		{in: "a/b/c", wantErr: true},
	} {
		got, err := parseRecordRef(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseRecordRef(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("parseRecordRef(%q) = %q, want %q", tt.in, got.String(), tt.want)
		}
	}
}
