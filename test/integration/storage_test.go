package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/utils/etcdread"
)

const (
	// encryptedPrefix is what local mode's EncryptionConfiguration puts in
	// front of every configsets and configrevisions value: secretbox, key1.
	encryptedPrefix = "k8s:enc:secretbox:v1:key1:"
	// storageAPIVersion is the storage version every object is written in,
	// whichever version the client spoke.
	storageAPIVersion = "config.capstan.dev/v1beta1"
	storageNamespace  = "storage"
)

// TestStorage reads what Capstan wrote to etcd, bypassing the server: the
// exact key, the encryption prefix, the absence of any plaintext, and, once
// decrypted with the server's own EncryptionConfiguration, a v1beta1 object.
func TestStorage(t *testing.T) {
	// A server of its own: the test expects its policy to be the only configpolicies key in etcd.
	ts := capstantesting.StartTestServer(t)
	client := newClientset(t, ts)
	etcd := etcdClient(t, ts)
	ctx := t.Context()

	encryption, err := etcdread.Load(ctx, filepath.Join(ts.DataDir, "encryption-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// decrypt decrypts raw with the server's own encryption config, and
	// requires it to be written with the current key and provider.
	decrypt := func(t *testing.T, resource, key string, raw []byte) []byte {
		t.Helper()
		plain, stale, err := encryption.Decrypt(t.Context(), config.Resource(resource), key, raw)
		if err != nil {
			t.Fatalf("decrypting %s with the server's encryption config: %v", key, err)
		}
		if stale {
			t.Errorf("value at %s is stale for the current encryption config: it was written with another key or provider", key)
		}
		return plain
	}

	// Distinctive values that must never reach etcd in the clear. Every test
	// below adds its own to secrets, and the final subtest scans all of etcd.
	secrets := map[string]string{}

	t.Run("v1beta1 ConfigSet is encrypted at its exact key and decrypts to v1beta1", func(t *testing.T) {
		const (
			name        = "payments"
			plainValue  = "st-plain-7f3c9a1e-visible-only-to-the-api"
			secretValue = "st-secret-Zq81xK-never-in-etcd"
		)
		secrets["v1beta1 plain value"] = plainValue
		secrets["v1beta1 secret value"] = secretValue
		_, err := client.ConfigV1beta1().ConfigSets(storageNamespace).Create(ctx, &v1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1beta1.ConfigSetSpec{
				Data:       map[string]string{"ENDPOINT": plainValue},
				SecretData: map[string][]byte{"API_KEY": []byte(secretValue)},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating ConfigSet %s/%s: %v", storageNamespace, name, err)
		}

		key := "/registry/config.capstan.dev/configsets/" + storageNamespace + "/" + name
		raw := etcdread.MustGet(t, etcd, key)
		if !bytes.HasPrefix(raw, []byte(encryptedPrefix)) {
			t.Fatalf("value at %s starts with %q, want the prefix %q", key, head(raw), encryptedPrefix)
		}
		requireNotInClear(t, key, raw, plainValue, secretValue)

		plain := decrypt(t, "configsets", key, raw)
		var stored v1beta1.ConfigSet
		decodeStored(t, key, plain, "ConfigSet", &stored)
		if stored.Name != name || stored.Namespace != storageNamespace {
			t.Errorf("stored object is %s/%s, want %s/%s", stored.Namespace, stored.Name, storageNamespace, name)
		}
		if got := stored.Spec.Data["ENDPOINT"]; got != plainValue || len(stored.Spec.Data) != 1 {
			t.Errorf("stored spec.data = %v, want only ENDPOINT=%q", stored.Spec.Data, plainValue)
		}
		if got := string(stored.Spec.SecretData["API_KEY"]); got != secretValue || len(stored.Spec.SecretData) != 1 {
			t.Errorf("stored spec.secretData = %q, want only API_KEY=%q", stored.Spec.SecretData, secretValue)
		}
		if stored.Status.CurrentRevision != 1 {
			t.Errorf("stored status.currentRevision = %d, want 1", stored.Status.CurrentRevision)
		}
		if stored.Spec.RevisionHistoryLimit == nil || *stored.Spec.RevisionHistoryLimit != config.DefaultRevisionHistoryLimit {
			t.Errorf("stored spec.revisionHistoryLimit = %v, want the default %d", stored.Spec.RevisionHistoryLimit, config.DefaultRevisionHistoryLimit)
		}
	})

	t.Run("v1alpha1 ConfigSet is stored as v1beta1 data and secretData", func(t *testing.T) {
		const (
			name        = "search"
			plainValue  = "st-alpha-plain-4b1d77-shards"
			secretValue = "st-alpha-secret-Pp09Lm-token"
		)
		secrets["v1alpha1 plain value"] = plainValue
		secrets["v1alpha1 secret value"] = secretValue
		_, err := client.ConfigV1alpha1().ConfigSets(storageNamespace).Create(ctx, &v1alpha1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.ConfigSetSpec{Entries: []v1alpha1.ConfigEntry{
				{Key: "INDEX", Value: plainValue},
				{Key: "TOKEN", Value: base64.StdEncoding.EncodeToString([]byte(secretValue)), Secret: true},
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating v1alpha1 ConfigSet %s/%s: %v", storageNamespace, name, err)
		}

		key := "/registry/config.capstan.dev/configsets/" + storageNamespace + "/" + name
		raw := etcdread.MustGet(t, etcd, key)
		if !bytes.HasPrefix(raw, []byte(encryptedPrefix)) {
			t.Fatalf("value at %s starts with %q, want the prefix %q", key, head(raw), encryptedPrefix)
		}
		requireNotInClear(t, key, raw, plainValue, secretValue)

		plain := decrypt(t, "configsets", key, raw)
		var stored v1beta1.ConfigSet
		decodeStored(t, key, plain, "ConfigSet", &stored)
		if got := stored.Spec.Data["INDEX"]; got != plainValue || len(stored.Spec.Data) != 1 {
			t.Errorf("stored spec.data = %v, want only INDEX=%q", stored.Spec.Data, plainValue)
		}
		if got := string(stored.Spec.SecretData["TOKEN"]); got != secretValue || len(stored.Spec.SecretData) != 1 {
			t.Errorf("stored spec.secretData = %q, want only TOKEN=%q", stored.Spec.SecretData, secretValue)
		}
		var generic map[string]any
		if err := json.Unmarshal(plain, &generic); err != nil {
			t.Fatalf("stored value at %s is not JSON: %v", key, err)
		}
		if spec, _ := generic["spec"].(map[string]any); spec == nil || spec["entries"] != nil {
			t.Errorf("stored spec = %v, want the v1beta1 shape without entries", generic["spec"])
		}
	})

	t.Run("ConfigRevision is encrypted at its exact key and decrypts to v1beta1", func(t *testing.T) {
		const (
			name        = "st-manual-revision"
			secretValue = "st-revision-secret-Hh55Qa"
			plainValue  = "st-revision-plain-0c0ffee"
		)
		secrets["revision plain value"] = plainValue
		secrets["revision secret value"] = secretValue
		_, err := ts.Server.Storage.ConfigRevisions.Create(genericapirequest.WithNamespace(ctx, storageNamespace), &config.ConfigRevision{
			ObjectMeta:    metav1.ObjectMeta{Name: name, Namespace: storageNamespace},
			ConfigSetName: "st-manual",
			Revision:      3,
			Data:          map[string]string{"PLAIN": plainValue},
			SecretData:    map[string][]byte{"SECRET": []byte(secretValue)},
			Author:        "st-author",
		}, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating ConfigRevision through the store: %v", err)
		}

		key := "/registry/config.capstan.dev/configrevisions/" + storageNamespace + "/" + name
		raw := etcdread.MustGet(t, etcd, key)
		if !bytes.HasPrefix(raw, []byte(encryptedPrefix)) {
			t.Fatalf("value at %s starts with %q, want the prefix %q", key, head(raw), encryptedPrefix)
		}
		requireNotInClear(t, key, raw, plainValue, secretValue)

		plain := decrypt(t, "configrevisions", key, raw)
		var stored v1beta1.ConfigRevision
		decodeStored(t, key, plain, "ConfigRevision", &stored)
		if stored.ConfigSetName != "st-manual" || stored.Revision != 3 || stored.Author != "st-author" {
			t.Errorf("stored revision = {configSetName %q, revision %d, author %q}, want {st-manual, 3, st-author}",
				stored.ConfigSetName, stored.Revision, stored.Author)
		}
		if stored.Data["PLAIN"] != plainValue || string(stored.SecretData["SECRET"]) != secretValue {
			t.Errorf("stored revision entries = data %v, secretData %q; want PLAIN=%q, SECRET=%q",
				stored.Data, stored.SecretData, plainValue, secretValue)
		}
	})

	t.Run("ConfigPolicy is plain v1beta1 JSON at its cluster-scoped key", func(t *testing.T) {
		const name = "st-guardrails"
		// Written through v1alpha1, so that the stored apiVersion shows the
		// storage version and not the request's.
		_, err := client.ConfigV1alpha1().ConfigPolicies().Create(ctx, &v1alpha1.ConfigPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.ConfigPolicySpec{
				Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "st-none"}},
				KeyPattern:  "^[A-Z_]+$",
				Enforcement: v1alpha1.EnforcementWarn,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating ConfigPolicy %s: %v", name, err)
		}

		key := "/registry/config.capstan.dev/configpolicies/" + name
		raw := etcdread.MustGet(t, etcd, key)
		if bytes.HasPrefix(raw, []byte("k8s:enc:")) {
			t.Fatalf("value at %s is encrypted (%q); ConfigPolicies hold no secrets and are stored as plain JSON", key, head(raw))
		}
		var stored v1beta1.ConfigPolicy
		decodeStored(t, key, raw, "ConfigPolicy", &stored)
		if stored.Name != name || stored.Namespace != "" {
			t.Errorf("stored policy is %q/%q, want cluster-scoped %q", stored.Namespace, stored.Name, name)
		}
		if stored.Spec.KeyPattern != "^[A-Z_]+$" || stored.Spec.Enforcement != v1beta1.EnforcementWarn {
			t.Errorf("stored spec = {keyPattern %q, enforcement %q}, want {^[A-Z_]+$, Warn}", stored.Spec.KeyPattern, stored.Spec.Enforcement)
		}
		// A cluster-scoped object must not also appear under a namespace.
		resp, err := etcd.Get(ctx, "/registry/config.capstan.dev/configpolicies/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatalf("listing configpolicies keys: %v", err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != key {
			var keys []string
			for _, kv := range resp.Kvs {
				keys = append(keys, string(kv.Key))
			}
			t.Errorf("configpolicies keys = %q, want exactly [%q]", keys, key)
		}
	})

	t.Run("no distinctive value appears anywhere in etcd", func(t *testing.T) {
		if len(secrets) < 6 {
			t.Fatalf("only %d distinctive values were written; an earlier subtest failed before writing", len(secrets))
		}
		// Every key, not only /registry: "\x00" with WithFromKey starts at the
		// first possible key.
		resp, err := etcd.Get(ctx, "\x00", clientv3.WithFromKey())
		if err != nil {
			t.Fatalf("reading all of etcd: %v", err)
		}
		var configKeys int
		for _, kv := range resp.Kvs {
			k := string(kv.Key)
			for what, v := range secrets {
				for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
					if bytes.Contains(kv.Value, []byte(form)) || strings.Contains(k, form) {
						t.Errorf("etcd key %s holds the %s %q in the clear", k, what, form)
					}
				}
			}
			for _, resource := range []string{"configsets", "configrevisions"} {
				if strings.HasPrefix(k, "/registry/config.capstan.dev/"+resource+"/") {
					configKeys++
					if !bytes.HasPrefix(kv.Value, []byte(encryptedPrefix)) {
						t.Errorf("etcd key %s is not encrypted: starts with %q", k, head(kv.Value))
					}
				}
			}
		}
		// Two ConfigSets and the manual revision at least; the server may
		// have written revisions of its own, which must be encrypted too.
		if configKeys < 3 {
			t.Errorf("found %d keys of configsets and configrevisions in etcd, want at least 3", configKeys)
		}
	})
}

// newClientset returns the generated clientset as the local admin.
func newClientset(t *testing.T, ts *capstantesting.TestServer) *versioned.Clientset {
	t.Helper()
	client, err := versioned.NewForConfig(ts.ClientConfig)
	if err != nil {
		t.Fatalf("building the clientset: %v", err)
	}
	return client
}

// etcdClient connects straight to the test server's embedded etcd.
func etcdClient(t *testing.T, ts *capstantesting.TestServer) *clientv3.Client {
	t.Helper()
	cfg, err := ts.EtcdClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	client, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("connecting to etcd at %v: %v", ts.EtcdEndpoints, err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// requireNotInClear fails when any of values, or its base64 form, is in raw.
func requireNotInClear(t *testing.T, key string, raw []byte, values ...string) {
	t.Helper()
	for _, v := range values {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			if bytes.Contains(raw, []byte(form)) {
				t.Errorf("etcd value at %s contains %q in the clear", key, form)
			}
		}
	}
}

// decodeStored checks that data is JSON of the storage version and the
// given kind, and decodes it into into.
func decodeStored(t *testing.T, key string, data []byte, kind string, into any) {
	t.Helper()
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		t.Fatalf("stored value at %s is not JSON: starts with %q", key, head(data))
	}
	var meta metav1.TypeMeta
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatalf("stored value at %s is not JSON: %v", key, err)
	}
	if meta.APIVersion != storageAPIVersion || meta.Kind != kind {
		t.Fatalf("stored value at %s is %s %s, want %s %s", key, meta.APIVersion, meta.Kind, storageAPIVersion, kind)
	}
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatalf("decoding stored %s at %s: %v", kind, key, err)
	}
}

// head returns the first bytes of b, for messages.
func head(b []byte) string {
	const n = 300
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
