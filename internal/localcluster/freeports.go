package localcluster

import (
	"fmt"
	"net"
)

// FreePorts returns n distinct free loopback ports, holding them all open
// while choosing so that none is returned twice. A test cluster started on
// them runs beside `make cluster-up`'s and beside other test clusters.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
