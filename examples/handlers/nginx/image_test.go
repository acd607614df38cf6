package main

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0f", 32)
	tests := []struct {
		ref  string
		want string // "": valid; "no tag": errNoTag; otherwise a substring of the error
	}{
		{"nginx:1.27", ""},
		{"library/nginx:latest", ""},
		{"docker.io/library/nginx:1.27-alpine", ""},
		{"ghcr.io/my-org/my_image__x.y:v1_2", ""},
		{"localhost/nginx:1", ""},
		{"localhost:5000/nginx:1", ""},
		{"[::1]:5000/nginx:1", ""},
		{"Registry.Example.com/nginx:1", ""},
		{"nginx:1.27@" + digest, ""},
		{"nginx@" + digest, ""},
		{"nginx", "no tag"},
		{"nginx:", "no tag"},
		{"localhost:5000/nginx", "no tag"},
		{"", "no repository name"},
		{":1.27", "no repository name"},
		{"Nginx:1", "uppercase"},
		{"library/Nginx:1", "uppercase"},
		{" nginx:1", "whitespace"},
		{"nginx:1\n", "whitespace"},
		{"nginx::1", "component"},
		{"nginx:1:2", "component"},
		{"-nginx:1", "component"},
		{"nginx..x:1", "component"},
		{"nginx/:1", "component"},
		{"nginx:.1", "tag"},
		{"nginx:" + strings.Repeat("a", 129), "tag"},
		{"nginx@sha256:xyz", "digest"},
		{"nginx@" + digest + "@" + digest, "digest"},
		{"registry-.example.com/nginx:1", "registry"},
		{strings.Repeat("a", 256) + ":1", "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			err := checkImage(tt.ref)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkImage(%q) = %v, want valid", tt.ref, err)
			case tt.want == "no tag" && !errors.Is(err, errNoTag):
				t.Errorf("checkImage(%q) = %v, want errNoTag", tt.ref, err)
			case tt.want != "" && tt.want != "no tag" && (err == nil || errors.Is(err, errNoTag) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkImage(%q) = %v, want an error containing %q", tt.ref, err, tt.want)
			}
		})
	}
}
