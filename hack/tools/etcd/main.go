// Command etcd is etcd v3.5 built from the Go module proxy, for opgate's
// local cluster and integration tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
