package reliability

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	encryptioncontroller "k8s.io/apiserver/pkg/server/options/encryptionconfig/controller"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/reliability/harness"
	"capstan.dev/capstan/test/utils/etcdread"
	"capstan.dev/capstan/test/utils/kms"
)

const configSetKeyPrefix = "/registry/config.capstan.dev/configsets/"

var (
	key1 = base64.StdEncoding.EncodeToString([]byte("reliability-key-one-32-bytes!!!!"))
	key2 = base64.StdEncoding.EncodeToString([]byte("reliability-key-two-32-bytes!!!!"))
)

// encryptionConfig is an EncryptionConfiguration for both encrypted
// resources with the given providers (YAML list items, indented by 6).
func encryptionConfig(providers string) string {
	return `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - configsets.config.capstan.dev
      - configrevisions.config.capstan.dev
    providers:
` + providers + `      - identity: {}
`
}

func aesgcmProvider(keys ...string) string {
	return keyedProvider("aesgcm", keys...)
}

func keyedProvider(kind string, keys ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "      - %s:\n          keys:\n", kind)
	for _, k := range keys {
		secret := key1
		if k == "key2" {
			secret = key2
		}
		fmt.Fprintf(&b, "            - name: %s\n              secret: %s\n", k, secret)
	}
	return b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// decryptConfigSet decrypts a raw value with the EncryptionConfiguration at
// path, the etcd key as authenticated data, and decodes the v1beta1 JSON.
func decryptConfigSet(ctx context.Context, path, key string, raw []byte) (*v1beta1.ConfigSet, error) {
	plain, _, err := etcdread.DecryptFile(ctx, path, config.Resource("configsets"), key, raw)
	if err != nil {
		return nil, err
	}
	var obj v1beta1.ConfigSet
	if err := json.Unmarshal(plain, &obj); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", key, err)
	}
	if obj.APIVersion != "config.capstan.dev/v1beta1" {
		return nil, fmt.Errorf("%s stored as %s, want config.capstan.dev/v1beta1", key, obj.APIVersion)
	}
	return &obj, nil
}

// TestEncryptionAtRest checks what each provider writes to etcd.
func TestEncryptionAtRest(t *testing.T) {
	kmsEndpoint := kms.Start(t)
	cases := []struct {
		name, providers, prefix string
		bindsToKey              bool
	}{
		{"aesgcm", aesgcmProvider("key1"), "k8s:enc:aesgcm:v1:key1:", true},
		{"secretbox", keyedProvider("secretbox", "key1"), "k8s:enc:secretbox:v1:key1:", false},
		{"kms v2", fmt.Sprintf("      - kms:\n          apiVersion: v2\n          name: mock\n          endpoint: %s\n          timeout: 5s\n", kmsEndpoint), "k8s:enc:kms:v2:mock:", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "encryption.yaml")
			writeFile(t, path, encryptionConfig(tc.providers))
			ts := capstantesting.StartTestServer(t, "--encryption-provider-config="+path)
			cs := clientsetFor(t, ts)
			etcd := etcdClient(t, ts)
			const ns = "enc"
			secret := "s3cr3t-" + strings.ReplaceAll(tc.name, " ", "-") + "-do-not-store-in-clear"
			plain := "plain-" + strings.ReplaceAll(tc.name, " ", "-") + "-visible-value"
			obj := configSet("source", map[string]string{"ENDPOINT": plain})
			obj.Spec.SecretData = map[string][]byte{"TOKEN": []byte(secret)}
			created, err := cs.ConfigV1beta1().ConfigSets(ns).Create(ctx, obj, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			key := configSetKeyPrefix + ns + "/source"
			raw := etcdread.MustGet(t, etcd, key)
			if !bytes.HasPrefix(raw, []byte(tc.prefix)) {
				t.Errorf("raw value starts %.40q, want prefix %q", raw, tc.prefix)
			}
			for _, clear := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), plain, "source", "ENDPOINT"} {
				if bytes.Contains(raw, []byte(clear)) {
					t.Errorf("raw value contains %q in the clear", clear)
				}
			}
			decoded, err := decryptConfigSet(ctx, path, key, raw)
			if err != nil {
				t.Fatalf("independent decryption: %v", err)
			}
			if decoded.Name != "source" || string(decoded.Spec.SecretData["TOKEN"]) != secret || decoded.Spec.Data["ENDPOINT"] != plain || decoded.UID != created.UID {
				t.Errorf("decrypted object %s uid %s data %v, want source uid %s with the written values", decoded.Name, decoded.UID, decoded.Spec.Data, created.UID)
			}

			// A ciphertext copied to another object's key.
			if _, err := cs.ConfigV1beta1().ConfigSets(ns).Create(ctx, configSet("victim", map[string]string{"k": "victim"}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			victimKey := configSetKeyPrefix + ns + "/victim"
			if _, err := etcd.Put(ctx, victimKey, string(raw)); err != nil {
				t.Fatal(err)
			}
			got, err := cs.ConfigV1beta1().ConfigSets(ns).Get(ctx, "victim", metav1.GetOptions{})
			switch {
			case tc.bindsToKey && err == nil:
				t.Errorf("GET victim after copying source's ciphertext: got %s with data %v, want an error (%s binds ciphertext to the key)", got.Name, got.Spec.Data, tc.name)
			case tc.bindsToKey:
				t.Logf("copied ciphertext refused: %v", err)
			case err == nil:
				t.Logf("%s does not bind ciphertext to the key: GET victim returned name %q uid %s data %v (the copied object)", tc.name, got.Name, got.UID, got.Spec.Data)
			default:
				t.Logf("%s: copied ciphertext refused: %v", tc.name, err)
			}
			if tc.bindsToKey && err != nil && apierrors.IsNotFound(err) {
				t.Errorf("copied ciphertext reported as 404, want a decryption error")
			}
		})
	}
}

// TestEncryptionKeyRotationUnderLoad rotates from key1 to key2 with server
// restarts on one etcd while a background writer runs, and checks nothing
// acknowledged is lost and everything ends up under key2.
func TestEncryptionKeyRotationUnderLoad(t *testing.T) {
	ctx := context.Background()
	etcd := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true})
	raw := etcd.Client(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "encryption.yaml")
	const ns, initial = "rotation", 50

	var current atomic.Pointer[versioned.Clientset]
	var server *capstantesting.TestServer
	restart := func(providers string) {
		writeFile(t, path, encryptionConfig(providers))
		if server != nil {
			server.TearDown()
		}
		server = capstantesting.StartTestServer(t, "--etcd-servers="+etcd.Endpoint(), "--encryption-provider-config="+path)
		current.Store(clientsetFor(t, server))
	}
	restart(aesgcmProvider("key1"))
	for i := range initial {
		if _, err := current.Load().ConfigV1beta1().ConfigSets(ns).Create(ctx, configSet(fmt.Sprintf("obj-%03d", i), map[string]string{"v": "0"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The writer creates load-N objects and updates obj-* with a counter;
	// acked records what was acknowledged.
	var mu sync.Mutex
	acked := map[string]int{}
	var ackCount, failCount atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := current.Load().ConfigV1beta1().ConfigSets(ns)
			if i%2 == 0 {
				name := fmt.Sprintf("load-%05d", i)
				if _, err := c.Create(ctx, configSet(name, map[string]string{"v": strconv.Itoa(i)}), metav1.CreateOptions{}); err == nil {
					mu.Lock()
					acked[name] = i
					mu.Unlock()
					ackCount.Add(1)
				} else {
					failCount.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
				continue
			}
			name := fmt.Sprintf("obj-%03d", i%initial)
			obj, err := c.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				failCount.Add(1)
				time.Sleep(20 * time.Millisecond)
				continue
			}
			obj.Spec.Data = map[string]string{"v": strconv.Itoa(i)}
			if _, err := c.Update(ctx, obj, metav1.UpdateOptions{}); err == nil {
				mu.Lock()
				acked[name] = i
				mu.Unlock()
				ackCount.Add(1)
			} else {
				failCount.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	time.Sleep(2 * time.Second)
	restart(aesgcmProvider("key1", "key2")) // every server can read key2
	time.Sleep(2 * time.Second)
	restart(aesgcmProvider("key2", "key1")) // key2 writes
	time.Sleep(time.Second)

	// kubectl-style rewrite: GET and PUT every object, retrying conflicts.
	rewrite := func(t *testing.T) (sets, revisions, revisionsRefused int) {
		c := current.Load()
		list, err := c.ConfigV1beta1().ConfigSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("listing for rewrite: %v", err)
		}
		for _, item := range list.Items {
			for attempt := 0; ; attempt++ {
				obj, err := c.ConfigV1beta1().ConfigSets(ns).Get(ctx, item.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("rewrite get %s: %v", item.Name, err)
				}
				if _, err = c.ConfigV1beta1().ConfigSets(ns).Update(ctx, obj, metav1.UpdateOptions{}); err == nil {
					sets++
					break
				} else if !apierrors.IsConflict(err) || attempt > 20 {
					t.Fatalf("rewrite put %s: %v", item.Name, err)
				}
			}
		}
		// Revisions never change, and replacing a ConfigSet leaves them alone:
		// each is sent back unchanged, which storage writes again under the
		// write key. Pruned meanwhile is fine; a changed one is refused.
		revs, err := c.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("listing revisions: %v", err)
		}
		for i, rev := range revs.Items {
			rev.APIVersion, rev.Kind = "config.capstan.dev/v1beta1", "ConfigRevision"
			if i == 0 {
				changed := rev.DeepCopy()
				changed.Author = "mallory"
				if err := c.ConfigV1beta1().RESTClient().Put().Namespace(ns).Resource("configrevisions").Name(rev.Name).Body(changed).Do(ctx).Error(); apierrors.IsInvalid(err) {
					revisionsRefused++
				}
			}
			err := c.ConfigV1beta1().RESTClient().Put().Namespace(ns).Resource("configrevisions").Name(rev.Name).Body(&rev).Do(ctx).Error()
			switch {
			case err == nil:
				revisions++
			case !apierrors.IsNotFound(err):
				t.Fatalf("rewrite put revision %s: %v", rev.Name, err)
			}
		}
		return sets, revisions, revisionsRefused
	}
	sets, revisions, revisionsRefused := rewrite(t)
	t.Logf("rewrote %d ConfigSets and %d ConfigRevisions; a changed ConfigRevision PUT refused: %v", sets, revisions, revisionsRefused == 1)
	if revisionsRefused != 1 {
		t.Errorf("a PUT that changes a ConfigRevision was not refused with 422")
	}
	if revisions == 0 {
		t.Errorf("no ConfigRevision was rewritten")
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// Nothing acknowledged is lost, read through the server that still has key1.
	c := current.Load().ConfigV1beta1().ConfigSets(ns)
	list, err := c.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list after rotation: %v", err)
	}
	got := map[string]int{}
	for _, item := range list.Items {
		v, _ := strconv.Atoi(item.Spec.Data["v"])
		got[item.Name] = v
	}
	lost, creates := 0, 0
	for name, v := range acked {
		if strings.HasPrefix(name, "load-") {
			creates++
		}
		if g, ok := got[name]; !ok || g < v {
			lost++
			t.Errorf("acknowledged write lost: %s v=%d, stored %v (present %v)", name, v, g, ok)
		}
	}
	if len(list.Items) < initial+creates {
		t.Errorf("%d ConfigSets after rotation, want at least %d (%d initial + %d acknowledged creates)", len(list.Items), initial+creates, initial, creates)
	}

	// Every ConfigSet is under key2 and decrypts with key2 alone.
	resp, err := raw.Get(ctx, configSetKeyPrefix+ns+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	key2Only := filepath.Join(dir, "key2-only.yaml")
	writeFile(t, key2Only, encryptionConfig(aesgcmProvider("key2")))
	for _, kv := range resp.Kvs {
		if !bytes.HasPrefix(kv.Value, []byte("k8s:enc:aesgcm:v1:key2:")) {
			t.Errorf("%s still starts %.30q after rotation", kv.Key, kv.Value)
			continue
		}
		if _, err := decryptConfigSet(ctx, key2Only, string(kv.Key), kv.Value); err != nil {
			t.Errorf("%s does not decrypt with key2 alone: %v", kv.Key, err)
		}
	}
	if len(resp.Kvs) != len(list.Items) {
		t.Errorf("etcd has %d ConfigSets, the API lists %d", len(resp.Kvs), len(list.Items))
	}
	t.Logf("initial %d, writer acknowledged %d writes (%d creates), failed or unknown %d, ConfigSets at end %d, lost %d",
		initial, ackCount.Load(), creates, failCount.Load(), len(list.Items), lost)

	t.Run("ConfigRevisions are re-encrypted under key2", func(t *testing.T) {
		revResp, err := raw.Get(ctx, "/registry/config.capstan.dev/configrevisions/"+ns+"/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		stale := 0
		for _, kv := range revResp.Kvs {
			if !bytes.HasPrefix(kv.Value, []byte("k8s:enc:aesgcm:v1:key2:")) {
				stale++
			}
		}
		if stale > 0 {
			t.Errorf("%d of %d ConfigRevisions are still encrypted with key1 after every ConfigSet and ConfigRevision was replaced",
				stale, len(revResp.Kvs))
		}
	})

	t.Run("the server starts and serves everything with key1 removed", func(t *testing.T) {
		writeFile(t, path, encryptionConfig(aesgcmProvider("key2")))
		server.TearDown()
		server = capstantesting.StartTestServer(t, "--etcd-servers="+etcd.Endpoint(), "--encryption-provider-config="+path)
		cs := clientsetFor(t, server)
		after, err := cs.ConfigV1beta1().ConfigSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list ConfigSets with key2 only: %v", err)
		}
		if len(after.Items) != len(list.Items) {
			t.Errorf("%d ConfigSets with key2 only, %d before", len(after.Items), len(list.Items))
		}
		if _, err := cs.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list ConfigRevisions with key2 only: %v", err)
		}
	})
}

// TestEncryptionConfigInvalidReload writes an invalid configuration over a
// live, automatically reloaded one and checks the server keeps encrypting
// with the old one.
func TestEncryptionConfigInvalidReload(t *testing.T) {
	ctx := context.Background()
	// The reload controller polls the file every minute; k8s.io/apiserver
	// exposes the period for tests. No other test uses automatic reload.
	oldPoll := encryptioncontroller.EncryptionConfigFileChangePollDuration
	encryptioncontroller.EncryptionConfigFileChangePollDuration = 500 * time.Millisecond
	t.Cleanup(func() { encryptioncontroller.EncryptionConfigFileChangePollDuration = oldPoll })
	path := filepath.Join(t.TempDir(), "encryption.yaml")
	writeFile(t, path, encryptionConfig(aesgcmProvider("key1")))
	ts := capstantesting.StartTestServer(t, "--encryption-provider-config="+path, "--encryption-provider-config-automatic-reload")
	clientset := clientsetFor(t, ts)
	cs := clientset.ConfigV1beta1().ConfigSets("reload")
	reloads := func(status string) int {
		t.Helper()
		body, err := clientset.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		total := 0
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "apiserver_encryption_config_controller_automatic_reloads_total{") && strings.Contains(line, `status="`+status+`"`) {
				fields := strings.Fields(line)
				n, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
				total += int(n)
			}
		}
		return total
	}
	etcd := etcdClient(t, ts)

	check := func(name, wantPrefix string) {
		t.Helper()
		if _, err := cs.Create(ctx, configSet(name, map[string]string{"k": "reload-plaintext-" + name}), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		raw := etcdread.MustGet(t, etcd, configSetKeyPrefix+"reload/"+name)
		if !bytes.HasPrefix(raw, []byte(wantPrefix)) || bytes.Contains(raw, []byte("reload-plaintext-")) {
			t.Errorf("%s stored as %.40q, want prefix %q and no plaintext", name, raw, wantPrefix)
		}
	}
	check("before", "k8s:enc:aesgcm:v1:key1:")

	invalid := []string{
		"this: is: not: valid: yaml",
		encryptionConfig("      - aesgcm:\n          keys:\n            - name: bad\n              secret: not-base64!!\n"),
		"kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources: []\n",
		"",
	}
	written := 0
	for i, content := range invalid {
		failures := reloads("failure")
		writeFile(t, path, content)
		// Wait until the controller has tried this content and refused it.
		deadline := time.Now().Add(30 * time.Second)
		for reloads("failure") <= failures {
			if time.Now().After(deadline) {
				t.Fatalf("invalid config %d: no failed reload recorded within 30s", i)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for j := range 3 {
			check(fmt.Sprintf("invalid-%d-%d", i, j), "k8s:enc:aesgcm:v1:key1:")
			written++
		}
	}
	if n := reloads("success"); n != 0 {
		t.Errorf("%d successful reloads recorded for invalid configurations", n)
	}
	t.Logf("%d invalid configurations refused (%d failed reloads), %d writes during them all encrypted with key1",
		len(invalid), reloads("failure"), written)

	// A valid change is picked up, so the refusals above were real decisions.
	writeFile(t, path, encryptionConfig(aesgcmProvider("key2", "key1")))
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; ; n++ {
		name := fmt.Sprintf("valid-%d", n)
		if _, err := cs.Create(ctx, configSet(name, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		raw := etcdread.MustGet(t, etcd, configSetKeyPrefix+"reload/"+name)
		if bytes.HasPrefix(raw, []byte("k8s:enc:aesgcm:v1:key2:")) {
			t.Logf("valid config reloaded after %d writes", n+1)
			break
		}
		if !bytes.HasPrefix(raw, []byte("k8s:enc:aesgcm:v1:key1:")) {
			t.Fatalf("%s stored as %.40q during reload", name, raw)
		}
		if time.Now().After(deadline) {
			t.Fatal("a valid configuration was not reloaded within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Everything written still reads back.
	list, err := cs.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ConfigSets readable after reloads", len(list.Items))
}
