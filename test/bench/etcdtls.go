package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"capstan.dev/capstan/test/utils/controlplane"
)

// etcdClientTLS is Capstan's etcd client identity in the cluster, for reading
// that etcd's /metrics.
func etcdClientTLS(c *controlplane.Cluster) (*tls.Config, error) {
	ca, err := os.ReadFile(c.EtcdCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", c.EtcdCAFile)
	}
	cert, err := tls.LoadX509KeyPair(c.CapstanEtcdClientCert, c.CapstanEtcdClientKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
