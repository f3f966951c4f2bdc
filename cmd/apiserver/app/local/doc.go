// Package local prepares the on-disk state that Capstan's "local mode" needs
// so that a single binary can run as a self-contained aggregated API server
// on a developer machine: a private PKI, an admin kubeconfig, an encryption
// configuration for data at rest, and an embedded etcd.
//
// Every function here is safe to call on each start-up: existing state is
// reused so that restarts keep the same CA, encryption key and etcd data,
// while artefacts that are missing or no longer fit are regenerated.
package local
