package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"capstan.dev/capstan/test/utils/controlplane"
)

// freshCapstan restarts Capstan on its etcd compacted to the current revision
// and defragmented, so that a system measured after another on the same
// Capstan starts as the first did: without the history of the first in
// etcd's database nor its objects in Capstan's watch caches. O-direct,
// measured after O-agg's creates and deletions, otherwise read and wrote a
// larger, fragmented database with a heap holding O-agg's recent events.
func (b *benchCluster) freshCapstan(ctx context.Context) error {
	if err := b.c.StopCapstan(); err != nil {
		return err
	}
	if err := compactEtcd(ctx, b.c); err != nil {
		return err
	}
	if err := b.c.StartCapstan(ctx); err != nil {
		return err
	}
	// Later systems (wl) reach Capstan through the aggregator again.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return b.c.WaitAvailable(wctx)
}

// compactEtcd compacts Capstan's etcd to its current revision and
// defragments it.
func compactEtcd(ctx context.Context, c *controlplane.Cluster) error {
	tlsConfig, err := c.CapstanEtcdTLS()
	if err != nil {
		return err
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: []string{c.CapstanEtcdURL}, TLS: tlsConfig, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer client.Close()
	resp, err := client.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	// Capstan compacts on its own schedule too; a revision it has already
	// compacted leaves nothing for this compaction to do.
	if _, err := client.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("compacting Capstan's etcd: %w", err)
	}
	if _, err := client.Defragment(ctx, c.CapstanEtcdURL); err != nil {
		return fmt.Errorf("defragmenting Capstan's etcd: %w", err)
	}
	return nil
}
