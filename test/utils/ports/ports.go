// Package ports picks free TCP ports on 127.0.0.1 for the servers that the
// test suites start as child processes, which must be told their ports.
package ports

import (
	"fmt"
	"net"
)

// Free returns a TCP port on 127.0.0.1 that was free a moment ago.
func Free() (int, error) {
	ports, err := FreeN(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreeN returns n distinct TCP ports on 127.0.0.1 that were free a moment
// ago. All n are held open until every one is found, so none repeats.
func FreeN(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
