module github.com/opgate/opgate/hack/tools/image

go 1.26.0

require github.com/google/go-containerregistry v0.22.1 // indirect
