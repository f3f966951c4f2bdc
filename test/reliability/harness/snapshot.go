package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	"go.uber.org/zap"
)

// SaveSnapshot streams a point-in-time snapshot of the one etcd member in
// cfg.Endpoints into path through the maintenance Snapshot API, with the code
// `etcdctl snapshot save` runs: written to path.part, checked for its
// trailing checksum, fsynced and renamed. It returns the member's version.
func SaveSnapshot(ctx context.Context, cfg clientv3.Config, path string) (string, error) {
	return snapshot.SaveWithVersion(ctx, zap.NewNop(), cfg, path)
}

// RestoreSnapshot runs `etcdutl snapshot restore` of the snapshot file into
// dataDir, which must not exist yet, as a one-member cluster whose member is
// name at peerURL. args are further flags, such as --skip-hash-check for a
// database file copied out of a data folder instead of saved from a member.
func RestoreSnapshot(snapshotFile, dataDir, name, peerURL string, args ...string) error {
	etcdutl, err := EtcdutlBinary()
	if err != nil {
		return err
	}
	cmd := exec.Command(etcdutl, append([]string{"snapshot", "restore", snapshotFile,
		"--data-dir=" + dataDir,
		"--name=" + name,
		"--initial-cluster=" + name + "=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
	}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("etcdutl snapshot restore %s into %s: %v: %s", snapshotFile, dataDir, err, out)
	}
	return nil
}

// SnapshotInfo is what `etcdutl snapshot status` reports about a snapshot file.
type SnapshotInfo struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}

// SnapshotStatus runs `etcdutl snapshot status -w json` on a snapshot file.
func SnapshotStatus(snapshotFile string) (SnapshotInfo, error) {
	etcdutl, err := EtcdutlBinary()
	if err != nil {
		return SnapshotInfo{}, err
	}
	out, err := exec.Command(etcdutl, "snapshot", "status", snapshotFile, "--write-out=json").Output()
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("etcdutl snapshot status %s: %w", snapshotFile, err)
	}
	var info SnapshotInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return SnapshotInfo{}, fmt.Errorf("etcdutl snapshot status %s: %w: %s", snapshotFile, err, out)
	}
	return info, nil
}
