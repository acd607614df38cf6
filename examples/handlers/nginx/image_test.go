package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestCheckImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0f", 32)
	invalid := reference.ErrReferenceInvalidFormat
	tests := []struct {
		ref  string
		want error // nil: valid
	}{
		{"nginx:1.27", nil},
		{"library/nginx:latest", nil},
		{"docker.io/library/nginx:1.27-alpine", nil},
		{"ghcr.io/my-org/my_image__x.y:v1_2", nil},
		{"localhost/nginx:1", nil},
		{"localhost:5000/nginx:1", nil},
		{"[::1]:5000/nginx:1", nil},
		{"Registry.Example.com/nginx:1", nil},
		{"nginx:1.27@" + digest, nil},
		{"nginx@" + digest, nil},
		{"registry.example.com:5000/team/nginx@" + digest, nil},
		{"localhost:5000/nginx:1.27@" + digest, nil},
		{"nginx", errNoTag},
		{"nginx:", errNoTag},
		{"localhost:5000/nginx", errNoTag},
		{"localhost:5000/nginx:", errNoTag},
		{"", reference.ErrNameEmpty},
		{":1.27", invalid},
		{"Nginx:1", reference.ErrNameContainsUppercase},
		{"library/Nginx:1", reference.ErrNameContainsUppercase},
		{" nginx:1", invalid},
		{"nginx:1\n", invalid},
		{"nginx::1", invalid},
		{"nginx::", invalid},
		{"nginx:1:2", invalid},
		{"-nginx:1", invalid},
		{"nginx..x:1", invalid},
		{"nginx/:1", invalid},
		{"nginx:.1", invalid},
		{"nginx:" + strings.Repeat("a", 129), invalid},
		{"nginx@sha256:xyz", invalid},
		{"nginx@" + digest + "@" + digest, invalid},
		{"registry-.example.com/nginx:1", invalid},
		{"registry.example.com:port/nginx:1", invalid},
		{strings.Repeat("a", 256) + ":1", reference.ErrNameTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			if err := checkImage(tt.ref); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("checkImage(%q) = %v, want %v", tt.ref, err, tt.want)
			}
		})
	}
}
