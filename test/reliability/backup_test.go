package reliability

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	restclient "k8s.io/client-go/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/reliability/harness"
	"capstan.dev/capstan/test/utils/etcdread"
)

const (
	// backupAckedBeforeSnapshot and backupAckedAfterSnapshot are how many
	// writes the load must have acknowledged before the snapshot begins, and
	// after it ended, beyond the ones before.
	backupAckedBeforeSnapshot = 150
	backupAckedAfterSnapshot  = 50
	// backupWait bounds every wait of the backup tests on a condition.
	backupWait = 60 * time.Second
	// localEtcdMember is the member name of local mode's embedded etcd
	// (cmd/apiserver/app/local), which a restore into its data folder keeps.
	localEtcdMember = "capstan-local"
	// localEtcdPeerURL is the peer URL a restore for local mode records; the
	// embedded etcd listens on a new port on every start, which a single
	// member does not mind.
	localEtcdPeerURL = "https://127.0.0.1:2380"
	// restoreBump is how far docs/operations.md's restore moves etcd's
	// revision, and so resourceVersions, past the snapshot's.
	restoreBump = 1_000_000_000
)

// restoreArgs are the flags docs/operations.md restores with: resourceVersions
// never go back, and every one from before the restore counts as compacted,
// so that clients relist instead of waiting for versions that will not come.
var restoreArgs = []string{fmt.Sprintf("--bump-revision=%d", restoreBump), "--mark-compacted"}

// TestBackupRestoreUnderLoad is the backup and restore drill of
// docs/operations.md for Capstan on its own etcd: a snapshot taken with the
// maintenance Snapshot API while the fault tests' load writes, restored with
// the real etcdutl into a fresh etcd, and Capstan started on it with the same
// EncryptionConfiguration. Every ConfigSet whose write was acknowledged before
// the snapshot began is there with at least that write, its revisions hold
// what was written and by whom, secret values decrypt, rollback and new writes
// work, and nothing written after the snapshot ended is there. Started with an
// EncryptionConfiguration that lacks the key, Capstan exits with a message
// that names decryption and the configuration, and no secret or key.
func TestBackupRestoreUnderLoad(t *testing.T) {
	ctx := context.Background()
	const ns = "backup"
	dir := t.TempDir()
	encryption := filepath.Join(dir, "encryption.yaml")
	writeFile(t, encryption, encryptionConfig(aesgcmProvider("key1")))
	args := []string{"--request-timeout=" + faultRequestTimeout.String(), "--history-repair-grace-period=2s",
		"--encryption-provider-config=" + encryption}

	etcd := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true})
	source := harness.StartCapstan(t, harness.CapstanOptions{EtcdServers: []string{etcd.Endpoint()}, Args: args})
	sourceConfig, err := source.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	l := newLoad(t, loadOptions{namespace: ns, requestTimeout: faultRequestTimeout, configs: []*restclient.Config{sourceConfig}})
	l.Start()
	waitAcked(t, l, backupAckedBeforeSnapshot)

	// What is acknowledged when the snapshot begins must be in it. A write
	// recorded a moment after its answer counts as later, which only
	// weakens the claim.
	l.mu.Lock()
	ackedBefore := append([]ackedWrite(nil), l.acked...)
	createsBefore := append([]string(nil), l.ackedCreates...)
	l.mu.Unlock()
	snapshotFile := filepath.Join(dir, "capstan.db")
	began := time.Now()
	version, err := harness.SaveSnapshot(ctx, clientv3.Config{Endpoints: []string{etcd.Endpoint()}, DialTimeout: 5 * time.Second}, snapshotFile)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	took := time.Since(began)
	ackedDuring := l.Acked() - len(ackedBefore) - len(createsBefore)

	// Written after the snapshot ended: a restore that has it did not
	// restore the snapshot.
	const marker = "after-snapshot"
	sourceSets := versioned.NewForConfigOrDie(sourceConfig).ConfigV1beta1().ConfigSets(ns)
	if _, err := sourceSets.Create(ctx, configSet(marker, map[string]string{"k": "v"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, l, l.Acked()+backupAckedAfterSnapshot)
	l.Stop()
	l.StopWatchers()
	l.mu.Lock()
	ackedAll := append([]ackedWrite(nil), l.acked...)
	violations := append([]string(nil), l.violations...)
	l.mu.Unlock()
	for i, v := range violations {
		if i == 10 {
			t.Errorf("... and %d more violations", len(violations)-10)
			break
		}
		t.Errorf("violation under the load: %s", v)
	}
	sourceRV := listRV(ctx, t, sourceSets)
	// The source is gone: nothing below can read it.
	source.Kill()
	etcd.Kill()

	info, err := harness.SnapshotStatus(snapshotFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot of etcd %s taken in %v at revision %d (%d keys, %d bytes); acknowledged before it began: %d writes and creates, while it ran: %d, in all: %d",
		version, took.Round(time.Millisecond), info.Revision, info.TotalKey, info.TotalSize, len(ackedBefore)+len(createsBefore), ackedDuring, l.Acked())
	t.Logf("load: %s", l.Summary())

	restored := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true, Snapshot: snapshotFile, RestoreArgs: restoreArgs})
	raw := restored.Client(t)
	if resp, err := raw.Get(ctx, "/", clientv3.WithCountOnly()); err != nil {
		t.Fatal(err)
	} else if resp.Header.Revision != info.Revision+restoreBump {
		t.Errorf("restored etcd is at revision %d, want the snapshot's %d + %d", resp.Header.Revision, info.Revision, restoreBump)
	}
	target := harness.StartCapstan(t, harness.CapstanOptions{EtcdServers: []string{restored.Endpoint()}, Args: args})
	targetConfig, err := target.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs := versioned.NewForConfigOrDie(targetConfig)
	sets := cs.ConfigV1beta1().ConfigSets(ns)

	if got, err := sets.Get(ctx, marker, metav1.GetOptions{}); err == nil {
		t.Errorf("%s, created after the snapshot ended, is in the restore (uid %s)", marker, got.UID)
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	for _, name := range createsBefore {
		if _, err := sets.Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s, created and acknowledged before the snapshot, after the restore: %v", name, err)
		}
	}

	// Every key holds at least its last write acknowledged before the
	// snapshot, and a state the load wrote: the value of the acknowledged
	// write of that revision, if there is one, and a secret entry equal to it.
	current := map[string]*v1beta1.ConfigSet{}
	for _, k := range l.keys {
		got, err := sets.Get(ctx, k, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s after the restore: %v", k, err)
		}
		current[k] = got
	}
	newest := map[string]int64{}
	for _, w := range ackedBefore {
		newest[w.key] = max(newest[w.key], w.revision)
	}
	written := map[string]string{}
	for _, w := range ackedAll {
		written[config.RevisionName(w.key, w.revision)] = w.value
	}
	later := 0
	for _, k := range l.keys {
		cur := current[k]
		rev, value := cur.Status.CurrentRevision, cur.Spec.Data[loadValueKey]
		if rev < newest[k] {
			t.Errorf("%s restored at revision %d, before its revision %d acknowledged before the snapshot", k, rev, newest[k])
		}
		if rev > newest[k] {
			later++
		}
		if want, ok := written[config.RevisionName(k, rev)]; ok && want != value {
			t.Errorf("%s restored at revision %d holds %q; the write acknowledged at that revision wrote %q", k, rev, value, want)
		}
		secret, hasSecret := cur.Spec.SecretData[loadSecretKey]
		if value == "init" && hasSecret || value != "init" && string(secret) != value {
			t.Errorf("%s restored at revision %d: its secret entry is not the one written with %q", k, rev, value)
		}
	}

	// Every key's current revision is there: the reconciler writes one the
	// snapshot caught between a ConfigSet's write and its revision's.
	var revs map[string]*v1beta1.ConfigRevision
	var missing []string
	for deadline := time.Now().Add(backupWait); ; {
		revs = listRevisions(ctx, t, cs, ns)
		missing = missing[:0]
		for _, k := range l.keys {
			if name := config.RevisionName(k, current[k].Status.CurrentRevision); revs[name] == nil {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("current revisions still missing %v after the restore: %v", backupWait, missing)
	}
	restoredByReconciler := 0
	for _, k := range l.keys {
		if rev := revs[config.RevisionName(k, current[k].Status.CurrentRevision)]; rev != nil && rev.Author != loadUser {
			restoredByReconciler++
		}
	}

	// Each write acknowledged before the snapshot has its revision, with its
	// entries, its secret entry and its author, unless its limit pruned it.
	checked, warned, lost := 0, 0, 0
	for _, w := range ackedBefore {
		if w.revision <= current[w.key].Status.CurrentRevision-l.limits[w.key] {
			continue
		}
		if w.warned {
			// Its revision was left to the source's reconciler, which is gone.
			warned++
			continue
		}
		checked++
		if bad := checkRevision(w, revs[config.RevisionName(w.key, w.revision)]); bad != "" {
			lost++
			if lost <= 10 {
				t.Errorf("write of %s acknowledged before the snapshot at revision %d: %s", w.key, w.revision, bad)
			}
		}
	}
	t.Logf("after the restore: %d keys, %d of them past their last write acknowledged before the snapshot; %d revisions of acknowledged writes checked, %d wrong or missing, %d left out (warned); %d current revisions written by the reconciler",
		len(l.keys), later, checked, lost, warned, restoredByReconciler)
	if checked == 0 {
		t.Fatal("no acknowledged write's revision was checked")
	}

	// Secret values are encrypted with key1 in the restored etcd and decrypt.
	withSecret := l.keys[0]
	for _, k := range l.keys {
		if len(current[k].Spec.SecretData[loadSecretKey]) > 0 {
			withSecret = k
			break
		}
	}
	key := configSetKeyPrefix + ns + "/" + withSecret
	stored := etcdread.MustGet(t, raw, key)
	if !bytes.HasPrefix(stored, []byte("k8s:enc:aesgcm:v1:key1:")) {
		t.Errorf("%s is stored as %.30q in the restored etcd, want aesgcm with key1", key, stored)
	}
	if decrypted, err := decryptConfigSet(ctx, encryption, key, stored); err != nil {
		t.Errorf("decrypting %s from the restored etcd: %v", key, err)
	} else if got := decrypted.Spec.SecretData[loadSecretKey]; len(got) == 0 || !bytes.Equal(got, current[withSecret].Spec.SecretData[loadSecretKey]) {
		t.Errorf("%s decrypted from the restored etcd holds another secret entry than the server serves", key)
	}

	t.Run("rollback to a revision written before the snapshot", func(t *testing.T) {
		k, to, ok := rollbackCandidate(l, ackedBefore, current)
		if !ok {
			t.Fatal("no key has an earlier revision with other entries to roll back to")
		}
		before := current[k].Status.CurrentRevision
		out, err := sets.Rollback(ctx, k, &v1beta1.ConfigSetRollback{Revision: to.revision}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("rollback of %s to %d: %v", k, to.revision, err)
		}
		if out.Status.CurrentRevision != before+1 || out.Spec.Data[loadValueKey] != to.value || string(out.Spec.SecretData[loadSecretKey]) != to.value {
			t.Errorf("rollback of %s from %d to %d answered revision %d holding %q (secret entry equal to it: %v), want %d holding %q",
				k, before, to.revision, out.Status.CurrentRevision, out.Spec.Data[loadValueKey], string(out.Spec.SecretData[loadSecretKey]) == out.Spec.Data[loadValueKey], before+1, to.value)
		}
		rev, err := cs.ConfigV1beta1().ConfigRevisions(ns).Get(ctx, config.RevisionName(k, before+1), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the rollback's revision: %v", err)
		}
		if bad := checkRevision(ackedWrite{key: k, value: to.value, revision: before + 1, rollbackOf: to.revision}, rev); bad != "" || rev.RollbackOf != to.revision {
			t.Errorf("the rollback's revision %s: %q (rollbackOf %d, want %d)", rev.Name, bad, rev.RollbackOf, to.revision)
		}
	})

	// newSecret must never appear in a log.
	const newSecret = "s3cr3t-written-after-restore"
	t.Run("new writes", func(t *testing.T) {
		obj := configSet("after-restore", map[string]string{"k": "v"})
		obj.Spec.SecretData = map[string][]byte{"token": []byte(newSecret)}
		created, err := sets.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rv := resourceVersion(t, created.ResourceVersion); rv <= sourceRV {
			t.Errorf("resourceVersion %d after the restore, not past the source's last %d", rv, sourceRV)
		}
		key := configSetKeyPrefix + ns + "/after-restore"
		if stored := etcdread.MustGet(t, raw, key); !bytes.HasPrefix(stored, []byte("k8s:enc:aesgcm:v1:key1:")) || bytes.Contains(stored, []byte(newSecret)) {
			t.Errorf("%s stored as %.30q, want aesgcm with key1 and no secret in the clear", key, stored)
		}
		k := l.keys[1]
		patch := fmt.Sprintf(`{"spec":{"data":{%q:"after-restore"},"secretData":{%q:%q}}}`, loadValueKey, loadSecretKey, base64.StdEncoding.EncodeToString([]byte("after-restore")))
		out, err := sets.Patch(ctx, k, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rev, err := cs.ConfigV1beta1().ConfigRevisions(ns).Get(ctx, config.RevisionName(k, out.Status.CurrentRevision), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("revision of a patch after the restore: %v", err)
		}
		if bad := checkRevision(ackedWrite{key: k, value: "after-restore", revision: out.Status.CurrentRevision}, rev); bad != "" {
			t.Errorf("revision of a patch after the restore: %s", bad)
		}
	})

	t.Run("without the key", func(t *testing.T) {
		target.Kill()
		keyless := filepath.Join(dir, "without-key1.yaml")
		writeFile(t, keyless, encryptionConfig(aesgcmProvider("key2")))
		c := harness.NewCapstan(t, harness.CapstanOptions{EtcdServers: []string{restored.Endpoint()},
			Args: []string{"--encryption-provider-config=" + keyless}})
		failsWithoutKey(t, c, keyless, newSecret)
	})
}

// TestBackupRestoreLocalMode is the local-mode procedure of
// docs/operations.md: the embedded etcd snapshotted online with the client
// certificate local mode keeps in --data-dir/pki/etcd, and its database
// copied after a clean stop; each restored with etcdutl into the etcd folder
// of a new data folder beside the old one's encryption-config.yaml, and local
// mode started on it. Without encryption-config.yaml local mode generates a
// new key, and must refuse to start.
func TestBackupRestoreLocalMode(t *testing.T) {
	ctx := context.Background()
	const ns = "local"
	source := harness.StartCapstan(t, harness.CapstanOptions{Args: []string{"--embedded-etcd-unsafe-no-fsync"}})
	sourceConfig, err := source.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	sourceSets := versioned.NewForConfigOrDie(sourceConfig).ConfigV1beta1().ConfigSets(ns)
	// Three revisions of each ConfigSet, every one with its own secret value.
	const configSets, revisions = 4, 3
	var writes []ackedWrite
	for i := range configSets {
		name := fmt.Sprintf("app-%d", i)
		for r := 1; r <= revisions; r++ {
			value := fmt.Sprintf("%s-rev%d", name, r)
			var out *v1beta1.ConfigSet
			var err error
			if r == 1 {
				obj := configSet(name, map[string]string{loadValueKey: value})
				obj.Spec.SecretData = map[string][]byte{loadSecretKey: []byte(value)}
				out, err = sourceSets.Create(ctx, obj, metav1.CreateOptions{})
			} else {
				patch := fmt.Sprintf(`{"spec":{"data":{%q:%q},"secretData":{%q:%q}}}`, loadValueKey, value, loadSecretKey, base64.StdEncoding.EncodeToString([]byte(value)))
				out, err = sourceSets.Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			writes = append(writes, ackedWrite{key: name, value: value, revision: out.Status.CurrentRevision})
		}
	}

	dir := t.TempDir()
	online := filepath.Join(dir, "online.db")
	etcdConfig, err := source.EmbeddedEtcdConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := harness.SaveSnapshot(ctx, etcdConfig, online); err != nil {
		t.Fatalf("online snapshot of the embedded etcd at %v: %v", etcdConfig.Endpoints, err)
	}
	// After the online snapshot, before the stop: only in the copied database.
	const marker = "after-online-snapshot"
	if _, err := sourceSets.Create(ctx, configSet(marker, map[string]string{"k": "v"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sourceRV := listRV(ctx, t, sourceSets)
	if err := source.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-source.Exited():
	case <-time.After(backupWait):
		t.Fatalf("local mode still running %v after SIGTERM", backupWait)
	}
	if code := source.ExitCode(); code != 0 {
		t.Fatalf("local mode exited with %d after SIGTERM, want 0: %s", code, source.Tail(2000))
	}
	// The database file of a cleanly stopped etcd has every applied write.
	copied := filepath.Join(dir, "copied.db")
	copyFile(t, filepath.Join(source.DataDir(), "etcd", "member", "snap", "db"), copied)

	// newDataDir is a new data folder with etcd restored from snapshotFile
	// into its etcd folder, with restoreArgs, and the source's encryption
	// configuration and PKI when they are to be kept.
	newDataDir := func(snapshotFile string, keepKey, keepPKI bool, restoreArgs ...string) string {
		d := t.TempDir()
		if keepKey {
			copyFile(t, filepath.Join(source.DataDir(), "encryption-config.yaml"), filepath.Join(d, "encryption-config.yaml"))
		}
		if keepPKI {
			if err := os.CopyFS(filepath.Join(d, "pki"), os.DirFS(filepath.Join(source.DataDir(), "pki"))); err != nil {
				t.Fatal(err)
			}
		}
		if err := harness.RestoreSnapshot(snapshotFile, filepath.Join(d, "etcd"), localEtcdMember, localEtcdPeerURL, restoreArgs...); err != nil {
			t.Fatal(err)
		}
		return d
	}

	t.Run("online snapshot", func(t *testing.T) {
		c := harness.StartCapstan(t, harness.CapstanOptions{DataDir: newDataDir(online, true, true, restoreArgs...)})
		cs := localClientset(t, c)
		checkLocalRestore(ctx, t, cs, ns, writes)
		if _, err := cs.ConfigV1beta1().ConfigSets(ns).Get(ctx, marker, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s, created after the online snapshot: %v, want 404", marker, err)
		}
		// Rollback writes a new revision; a new ConfigSet is stored.
		out, err := cs.ConfigV1beta1().ConfigSets(ns).Rollback(ctx, "app-0", &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.Status.CurrentRevision != revisions+1 || out.Spec.Data[loadValueKey] != "app-0-rev1" {
			t.Errorf("rollback of app-0 to 1 answered revision %d holding %q", out.Status.CurrentRevision, out.Spec.Data[loadValueKey])
		}
		rev, err := cs.ConfigV1beta1().ConfigRevisions(ns).Get(ctx, config.RevisionName("app-0", revisions+1), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if bad := checkRevision(ackedWrite{key: "app-0", value: "app-0-rev1", revision: revisions + 1, rollbackOf: 1}, rev); bad != "" {
			t.Errorf("the rollback's revision: %s", bad)
		}
		created, err := cs.ConfigV1beta1().ConfigSets(ns).Create(ctx, configSet("after-restore", map[string]string{"k": "v"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("a create after the restore: %v", err)
		}
		if rv := resourceVersion(t, created.ResourceVersion); rv <= sourceRV {
			t.Errorf("resourceVersion %d after the restore, not past the source's last %d", rv, sourceRV)
		}
	})

	t.Run("database copied after a clean stop", func(t *testing.T) {
		// Without the PKI, local mode makes a new CA and kubeconfig. A copied
		// database has no snapshot checksum.
		c := harness.StartCapstan(t, harness.CapstanOptions{DataDir: newDataDir(copied, true, false, append([]string{"--skip-hash-check"}, restoreArgs...)...)})
		cs := localClientset(t, c)
		checkLocalRestore(ctx, t, cs, ns, writes)
		if _, err := cs.ConfigV1beta1().ConfigSets(ns).Get(ctx, marker, metav1.GetOptions{}); err != nil {
			t.Errorf("%s, acknowledged before the clean stop: %v", marker, err)
		}
	})

	t.Run("without encryption-config.yaml", func(t *testing.T) {
		d := newDataDir(online, false, true, restoreArgs...)
		c := harness.NewCapstan(t, harness.CapstanOptions{DataDir: d})
		var secrets []string
		for _, w := range writes {
			secrets = append(secrets, w.value)
		}
		failsWithoutKey(t, c, filepath.Join(d, "encryption-config.yaml"), secrets...)
	})
}

// waitAcked waits until the load has acknowledged n writes and creates.
func waitAcked(t *testing.T, l *load, n int) {
	t.Helper()
	deadline := time.Now().Add(backupWait)
	for l.Acked() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the load acknowledged %d writes in %v, want %d: %s", l.Acked(), backupWait, n, l.Summary())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func listRevisions(ctx context.Context, t *testing.T, cs versioned.Interface, ns string) map[string]*v1beta1.ConfigRevision {
	t.Helper()
	list, err := cs.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing revisions: %v", err)
	}
	revs := map[string]*v1beta1.ConfigRevision{}
	for i := range list.Items {
		revs[list.Items[i].Name] = &list.Items[i]
	}
	return revs
}

// rollbackCandidate picks a key that keeps its whole history and an earlier
// write to it, acknowledged before the snapshot with its own revision, whose
// entries differ from the current ones, so that a rollback to it must write
// a revision.
func rollbackCandidate(l *load, acked []ackedWrite, current map[string]*v1beta1.ConfigSet) (string, ackedWrite, bool) {
	for _, k := range l.keys {
		if l.limits[k] != loadHistoryLimit {
			continue
		}
		for _, w := range acked {
			if w.key == k && !w.warned && w.value != "init" && w.revision < current[k].Status.CurrentRevision && w.value != current[k].Spec.Data[loadValueKey] {
				return k, w, true
			}
		}
	}
	return "", ackedWrite{}, false
}

// failsWithoutKey launches c, whose EncryptionConfiguration at encryption
// lacks the key its etcd's data was written with, and checks that it never
// becomes ready and exits non-zero with a message that names decryption and
// the configuration, and none of secrets nor any key of these tests.
func failsWithoutKey(t *testing.T, c *harness.Capstan, encryption string, secrets ...string) {
	t.Helper()
	launched := time.Now()
	if err := c.Launch(); err != nil {
		t.Fatal(err)
	}
	exited := c.Exited()
	for done := false; !done; {
		select {
		case <-exited:
			done = true
			continue
		case <-time.After(200 * time.Millisecond):
		}
		if code, err := c.Readyz(); err == nil && code == http.StatusOK {
			t.Fatalf("ready %v after start without the key: %s", time.Since(launched).Round(time.Millisecond), c.Tail(2000))
		}
		if time.Since(launched) > backupWait {
			t.Fatalf("still running %v after start without the key, not ready, without exiting: %s", backupWait, c.Tail(3000))
		}
	}
	log := c.Tail(64 << 10)
	var message string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "command failed") {
			message = line
		}
	}
	t.Logf("without the key: exit code %d after %v; %s", c.ExitCode(), time.Since(launched).Round(time.Millisecond), message)
	if code := c.ExitCode(); code <= 0 {
		t.Errorf("exit code %d, want a failure", code)
	}
	lower := strings.ToLower(message)
	if !strings.Contains(lower, "decrypt") || !strings.Contains(message, encryption) {
		t.Errorf("the failure %q does not name decryption and the encryption configuration %s", message, encryption)
	}
	for _, s := range secrets {
		if strings.Contains(log, s) || strings.Contains(log, base64.StdEncoding.EncodeToString([]byte(s))) {
			t.Errorf("the log holds a secret value written before the restore")
		}
	}
	keys := []string{key1, key2}
	content, err := os.ReadFile(encryption)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(content), "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSpace(line), "secret:"); ok {
			keys = append(keys, strings.TrimSpace(k))
		}
	}
	for _, k := range keys {
		decoded, _ := base64.StdEncoding.DecodeString(k)
		if strings.Contains(log, k) || len(decoded) > 0 && strings.Contains(log, string(decoded)) {
			t.Errorf("the log holds key material")
		}
	}
}

// checkLocalRestore checks that every write is in the restored local-mode
// server: each ConfigSet at its last write, each revision with its entries,
// secret entry and author.
func checkLocalRestore(ctx context.Context, t *testing.T, cs versioned.Interface, ns string, writes []ackedWrite) {
	t.Helper()
	revs := listRevisions(ctx, t, cs, ns)
	last := map[string]ackedWrite{}
	for _, w := range writes {
		if bad := checkRevision(w, revs[config.RevisionName(w.key, w.revision)]); bad != "" {
			t.Errorf("%s revision %d after the restore: %s", w.key, w.revision, bad)
		}
		last[w.key] = w
	}
	for name, w := range last {
		got, err := cs.ConfigV1beta1().ConfigSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s after the restore: %v", name, err)
			continue
		}
		if got.Status.CurrentRevision != w.revision || got.Spec.Data[loadValueKey] != w.value || string(got.Spec.SecretData[loadSecretKey]) != w.value {
			t.Errorf("%s after the restore: revision %d holding %q (secret entry equal to it: %v), want revision %d holding %q",
				name, got.Status.CurrentRevision, got.Spec.Data[loadValueKey], string(got.Spec.SecretData[loadSecretKey]) == got.Spec.Data[loadValueKey], w.revision, w.value)
		}
	}
}

// listRV is the resourceVersion of a list: the server's newest.
func listRV(ctx context.Context, t *testing.T, sets configsetsClient) int64 {
	t.Helper()
	list, err := sets.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return resourceVersion(t, list.ResourceVersion)
}

func resourceVersion(t *testing.T, rv string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", rv, err)
	}
	return n
}

func localClientset(t *testing.T, c *harness.Capstan) versioned.Interface {
	t.Helper()
	cfg, err := c.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return versioned.NewForConfigOrDie(cfg)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
