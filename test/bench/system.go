package main

import (
	"context"
	"errors"
	"time"
)

// errUnsupported marks a workload a system has no equivalent for (raw etcd
// has no merge patch, label selectors or informers).
var errUnsupported = errors.New("not applicable to this system")

// system is one of the systems measured: raw etcd (E), Capstan direct (O),
// Capstan through the aggregator (O-agg) or the CRD (C). Every workload is
// written once against this interface.
type system interface {
	// name is E, O, O-agg or C.
	name() string
	// settings are what the system runs with.
	settings() Settings
	// serverPIDs are the API server processes whose CPU counts as the
	// server's (for E, etcd itself).
	serverPIDs() []int
	// etcdPIDs are the etcd processes behind the server (none for E).
	etcdPIDs() []int
	// memoryPID is the process whose RSS grows with the objects stored.
	memoryPID() int
	// etcdCounters returns etcd's mvcc counters (puts, txns, deletes).
	etcdCounters(ctx context.Context) (map[string]float64, error)
	// prepare makes the namespaces exist.
	prepare(ctx context.Context, namespaces []string) error
	create(ctx context.Context, ns, name string, i int, shape entryShape) error
	get(ctx context.Context, ns, name string, fromCache bool) error
	// update replaces the object with a changed entry, with optimistic concurrency.
	update(ctx context.Context, ns, name string, i, round int) error
	// patch changes an entry and sets sentAnnotation with a merge patch.
	patch(ctx context.Context, ns, name string, i, round int) error
	// apply changes an entry with server-side apply.
	apply(ctx context.Context, ns, name string, i, round int) error
	// list lists ns ("" for all), paginating when limit > 0, and returns the item count.
	list(ctx context.Context, ns, selector string, limit int64) (int, error)
	// watch starts a watch on ns from now and calls onEvent with the send
	// time of each modification; it returns once the watch is established.
	watch(ctx context.Context, ns string, onEvent func(sent int64)) error
	// informers starts n informers over all namespaces and waits until all
	// have synced.
	informers(ctx context.Context, n int) error
	// deleteAll removes every object in ns.
	deleteAll(ctx context.Context, ns string) error
	// profile fetches a CPU profile of seconds from each API server, by
	// process role.
	profile(ctx context.Context, seconds int) map[string][]byte
	// stop stops what the system started.
	stop()
}

// settleTime is how long a server gets to finish background work (watch
// cache dispatch, garbage collection) before a measurement starts.
var settleTime = 500 * time.Millisecond

func settle() { time.Sleep(settleTime) }
