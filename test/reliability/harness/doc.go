// Package harness holds the reusable pieces of Capstan's reliability tests:
// etcd as a child process that can be killed, paused and restarted on its
// data, or started on a snapshot restored with etcdutl; snapshots saved as
// etcdctl saves them; a fault-injecting TCP proxy, generated PKI (including a
// rogue CA and expired certificates) and a mock KMS v2 plugin. Everything
// listens on 127.0.0.1 or a unix socket only.
package harness
