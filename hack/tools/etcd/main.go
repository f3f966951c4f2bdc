// Command etcd is etcd built from the Go module, for Capstan's tests that need
// etcd as a separate process (kube-apiserver's, fault injection, clusters).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
