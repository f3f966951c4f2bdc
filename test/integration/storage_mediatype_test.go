package integration

import (
	"bytes"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/test/utils/etcdread"
)

// protobufPrefix starts every protobuf value Kubernetes' storage writes.
var protobufPrefix = []byte("k8s\x00")

// TestStorageMediaTypes: what one replica stored as JSON, another storing
// protobuf (--storage-media-type) still reads, and rewrites as protobuf on
// its next write; what it stored, the first reads back.
func TestStorageMediaTypes(t *testing.T) {
	// Servers of their own: two replicas on one etcd, storing differently.
	jsonReplica := capstantesting.StartTestServer(t)
	encryptionFile := filepath.Join(jsonReplica.DataDir, "encryption-config.yaml")
	protoReplica := capstantesting.StartTestServer(t, append(jsonReplica.EtcdFlags(),
		"--encryption-provider-config="+encryptionFile,
		"--storage-media-type="+runtime.ContentTypeProtobuf,
	)...)
	jsonClient, protoClient := newClientset(t, jsonReplica), newClientset(t, protoReplica)
	etcd := etcdClient(t, jsonReplica)
	ctx := t.Context()
	encryption, err := etcdread.Load(ctx, encryptionFile)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "storage-media"
	key := "/registry/config.capstan.dev/configsets/" + ns + "/"
	stored := func(name string) []byte {
		t.Helper()
		plain, _, err := encryption.Decrypt(ctx, schema.GroupResource{Group: config.GroupName, Resource: "configsets"}, key+name, etcdread.MustGet(t, etcd, key+name))
		if err != nil {
			t.Fatal(err)
		}
		return plain
	}

	secret := []byte("sm-secret-value")
	if _, err := jsonClient.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "written-as-json"},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"K": "v1"}, SecretData: map[string][]byte{"S": secret}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if raw := stored("written-as-json"); !bytes.HasPrefix(raw, []byte("{")) {
		t.Fatalf("the JSON replica stored %q…, want JSON", raw[:min(len(raw), 16)])
	}

	got, err := protoClient.ConfigV1beta1().ConfigSets(ns).Get(ctx, "written-as-json", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the protobuf replica reads a JSON object: %v", err)
	}
	if got.Spec.Data["K"] != "v1" || !bytes.Equal(got.Spec.SecretData["S"], secret) {
		t.Fatalf("read %v / %q, want K=v1 and the secret", got.Spec.Data, got.Spec.SecretData["S"])
	}
	got.Spec.Data["K"] = "v2"
	if _, err := protoClient.ConfigV1beta1().ConfigSets(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if raw := stored("written-as-json"); !bytes.HasPrefix(raw, protobufPrefix) {
		t.Fatalf("after the protobuf replica's update etcd holds %q…, want protobuf", raw[:min(len(raw), 16)])
	}

	again, err := jsonClient.ConfigV1beta1().ConfigSets(ns).Get(ctx, "written-as-json", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the JSON replica reads the protobuf object: %v", err)
	}
	if again.Spec.Data["K"] != "v2" || again.Status.CurrentRevision != 2 || !bytes.Equal(again.Spec.SecretData["S"], secret) {
		t.Fatalf("read %v, revision %d, want K=v2 at revision 2 with the secret", again.Spec.Data, again.Status.CurrentRevision)
	}
	revs, err := jsonClient.ConfigV1beta1().ConfigRevisions(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(revs.Items) != 2 {
		t.Fatalf("revisions through the JSON replica: %v, %d, want 2 (one stored by each)", err, len(revs.Items))
	}
}
