package storage

import (
	"context"
	"crypto/aes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericfeatures "k8s.io/apiserver/pkg/features"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	genericregistrytest "k8s.io/apiserver/pkg/registry/generic/testing"
	"k8s.io/apiserver/pkg/registry/rest"
	aestransformer "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

// revisionOf reads revision n of foo from etcd.
func revisionOf(t *testing.T, ctx context.Context, revisions *genericregistry.Store, n int64) *config.ConfigRevision {
	t.Helper()
	obj, err := revisions.Get(ctx, config.RevisionName("foo", n), &metav1.GetOptions{})
	if err != nil {
		t.Fatalf("revision %d: %v", n, err)
	}
	return obj.(*config.ConfigRevision)
}

// configSetAt returns foo as etcd held it at resourceVersion rv exactly.
func configSetAt(t *testing.T, ctx context.Context, s ConfigSetStorage, rv string) *config.ConfigSet {
	t.Helper()
	obj, err := s.ConfigSet.List(ctx, &metainternalversion.ListOptions{
		ResourceVersion: rv, ResourceVersionMatch: metav1.ResourceVersionMatchExact,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", "foo"),
	})
	if err != nil {
		t.Fatalf("list at %s: %v", rv, err)
	}
	items := obj.(*config.ConfigSetList).Items
	if len(items) != 1 {
		t.Fatalf("list at %s: %d ConfigSets, want foo", rv, len(items))
	}
	return &items[0]
}

// TestChangeAndRevisionInOneTransaction: a change of the entries and its
// revision are one etcd transaction, so that no crash can leave the change
// without its revision: the revision's resourceVersion is the ConfigSet's,
// for a create, an update, a rollback and concurrent updates retried after
// conflicts, each revision recording exactly the state its transaction stored.
func TestChangeAndRevisionInOneTransaction(t *testing.T) {
	s, _, revisions := newHistoryStorage(t, history.Options{})
	ctx := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})

	in := validConfigSet()
	in.Annotations = map[string]string{config.ChangeCauseAnnotation: "first"}
	obj, err := s.ConfigSet.Create(ctx, in, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := obj.(*config.ConfigSet)
	rev := revisionOf(t, ctx, revisions, 1)
	if rev.ResourceVersion != cs.ResourceVersion || rev.Author != "alice" || rev.ChangeCause != "first" || string(rev.SecretData["TOKEN"]) != "s3cr3t" {
		t.Errorf("revision 1: resourceVersion %s author %q cause %q, want the create's resourceVersion %s, alice, first and the secret",
			rev.ResourceVersion, rev.Author, rev.ChangeCause, cs.ResourceVersion)
	}

	// A create that finds the name taken is refused as ever, revision and all.
	if _, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create of foo: %v, want AlreadyExists", err)
	}
	if rev := revisionOf(t, ctx, revisions, 1); rev.ChangeCause != "first" {
		t.Errorf("revision 1 after a refused create: cause %q, want the first create's", rev.ChangeCause)
	}

	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set := rest.DefaultUpdatedObjectInfo(nil, func(_ context.Context, _, old runtime.Object) (runtime.Object, error) {
				cs := old.(*config.ConfigSet).DeepCopy()
				cs.Spec.Data["WRITER"] = fmt.Sprint(i)
				return cs, nil
			})
			_, _, err := s.ConfigSet.Update(ctx, "foo", set, nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for n := int64(2); n <= 1+writers; n++ {
		rev := revisionOf(t, ctx, revisions, n)
		stored := configSetAt(t, ctx, s, rev.ResourceVersion)
		if stored.Status.CurrentRevision != n || stored.Spec.Data["WRITER"] != rev.Data["WRITER"] || stored.UID != cs.UID {
			t.Errorf("revision %d (WRITER=%s) was written at resourceVersion %s, where the ConfigSet is at revision %d with WRITER=%s",
				n, rev.Data["WRITER"], rev.ResourceVersion, stored.Status.CurrentRevision, stored.Spec.Data["WRITER"])
		}
		seen[rev.Data["WRITER"]] = true
	}
	if len(seen) != writers {
		t.Errorf("revisions 2..%d record writers %v, want each of the %d once", 1+writers, seen, writers)
	}

	obj, err = s.Rollback.Create(ctx, "foo", &config.ConfigSetRollback{Revision: 1}, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rolled := obj.(*config.ConfigSet)
	rev = revisionOf(t, ctx, revisions, rolled.Status.CurrentRevision)
	if rev.ResourceVersion != rolled.ResourceVersion || rev.RollbackOf != 1 || rev.Data["WRITER"] != "" {
		t.Errorf("rollback's revision: resourceVersion %s rollbackOf %d data %v, want %s, 1 and revision 1's entries",
			rev.ResourceVersion, rev.RollbackOf, rev.Data, rolled.ResourceVersion)
	}
}

// TestRevisionOutsideTheTransaction: when the revision's name is taken (by a
// revision an earlier ConfigSet of the same name left) or the change and its
// revision together are too large for one etcd request, the change is stored
// alone and its revision written right after, as before.
func TestRevisionOutsideTheTransaction(t *testing.T) {
	s, _, revisions := newHistoryStorage(t, history.Options{})
	ctx := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})

	leftover := history.Snapshot(validConfigSet(), history.Change{Author: "bob"})
	leftover.Name = config.RevisionName("foo", 1)
	leftover.Revision = 1
	leftover.OwnerReferences[0].UID = types.UID("an-earlier-foo")
	if _, err := revisions.Create(ctx, leftover, rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := obj.(*config.ConfigSet)
	rev := revisionOf(t, ctx, revisions, 1)
	if !history.OwnedBy(rev, cs.UID) || rev.Author != "alice" || rev.ResourceVersion == cs.ResourceVersion {
		t.Errorf("revision 1 of the new foo: owner %v author %q resourceVersion %s (the ConfigSet's %s), want it replaced after the create, by alice",
			rev.OwnerReferences, rev.Author, rev.ResourceVersion, cs.ResourceVersion)
	}

	cs.Spec.Data["BIG"] = strings.Repeat("x", 600<<10)
	obj, _, err = s.ConfigSet.Update(ctx, "foo", rest.DefaultUpdatedObjectInfo(cs), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs = obj.(*config.ConfigSet)
	rev = revisionOf(t, ctx, revisions, 2)
	if rev.ResourceVersion == cs.ResourceVersion || len(rev.Data["BIG"]) != 600<<10 || rev.Author != "alice" {
		t.Errorf("revision 2 of 2 x 600 KiB: resourceVersion %s (the ConfigSet's %s), %d bytes of BIG, author %q; want written after the change, whole, by alice",
			rev.ResourceVersion, cs.ResourceVersion, len(rev.Data["BIG"]), rev.Author)
	}
}

// encrypting encrypts every resource with AES-GCM, authenticated by its etcd
// key, as encryption at rest does.
type encrypting struct {
	generic.RESTOptionsGetter
	t *testing.T
}

func (g encrypting) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	block, err := aes.NewCipher([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		return opts, err
	}
	transformer, err := aestransformer.NewGCMTransformer(block)
	if err != nil {
		return opts, err
	}
	cfg := *opts.StorageConfig
	cfg.Transformer = transformer
	opts.StorageConfig = &cfg
	return opts, nil
}

// TestRevisionInTheTransactionIsEncrypted: the revision written with its
// change is encrypted with the revision store's transformer under its own key,
// so the revision store reads it back and etcd holds no secret in clear.
func TestRevisionInTheTransactionIsEncrypted(t *testing.T) {
	s, _, revisions := newHistoryStorageOver(t, encrypting{registrytest.NewRESTOptionsGetter(t, false), t}, history.Options{})
	ctx := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})
	obj, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rev := revisionOf(t, ctx, revisions, 1)
	if rev.ResourceVersion != obj.(*config.ConfigSet).ResourceVersion || string(rev.SecretData["TOKEN"]) != "s3cr3t" {
		t.Errorf("revision 1: resourceVersion %s, secret %q; want the create's %s and s3cr3t",
			rev.ResourceVersion, rev.SecretData["TOKEN"], obj.(*config.ConfigSet).ResourceVersion)
	}
}

// TestCorruptConfigSetCanBeDeleted: the ConfigSet store, whose etcd client is
// its own, keeps the storage factory's handling of objects that cannot be
// read: with AllowUnsafeMalformedObjectDeletion on, a ConfigSet whose bytes
// in etcd do not decrypt reads as corrupt and can be deleted with
// ignoreStoreReadErrorWithClusterBreakingPotential.
func TestCorruptConfigSetCanBeDeleted(t *testing.T) {
	featuregatetesting.SetFeatureGateDuringTest(t, utilfeature.DefaultFeatureGate, genericfeatures.AllowUnsafeMalformedObjectDeletion, true)
	optsGetter := encrypting{registrytest.NewRESTOptionsGetter(t, false), t}
	s, _, _ := newHistoryStorageOver(t, optsGetter, history.Options{})
	ctx := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})
	if _, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Overwrite foo in etcd with bytes no key decrypts.
	opts, err := optsGetter.GetRESTOptions(config.Resource("configsets"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: opts.StorageConfig.Transport.ServerList, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	keys, err := client.Get(ctx, opts.StorageConfig.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var key string
	for _, kv := range keys.Kvs {
		if strings.HasSuffix(string(kv.Key), "/configsets/test/foo") {
			key = string(kv.Key)
		}
	}
	if key == "" {
		t.Fatalf("no key of foo among %d keys", len(keys.Kvs))
	}
	if _, err := client.Put(ctx, key, "not the ciphertext of anything"); err != nil {
		t.Fatal(err)
	}

	if _, err := s.ConfigSet.Get(ctx, "foo", &metav1.GetOptions{}); !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "corrupt object") {
		t.Fatalf("get of the corrupt foo: %v, want an internal error naming a corrupt object", err)
	}
	if _, _, err := s.ConfigSet.Delete(ctx, "foo", rest.ValidateAllObjectFunc, &metav1.DeleteOptions{}); err == nil {
		t.Fatal("a plain delete of the corrupt foo succeeded, want it refused")
	}
	// The DELETE handler hands a request with the option to the store's
	// corrupt object deleter, as here.
	deleter := s.ConfigSet.GetCorruptObjDeleter()
	if deleter == nil {
		t.Fatal("the ConfigSet store has no corrupt object deleter")
	}
	unsafe := true
	if _, _, err := deleter.Delete(ctx, "foo", rest.ValidateAllObjectFunc, &metav1.DeleteOptions{IgnoreStoreReadErrorWithClusterBreakingPotential: &unsafe}); err != nil {
		t.Fatalf("unsafe delete of the corrupt foo: %v", err)
	}
	if resp, err := client.Get(ctx, key); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("foo in etcd after the unsafe delete: %d keys, %v; want none", len(resp.Kvs), err)
	}
}

// TestChangeAdmittedOncePerWrite: a change that writes a revision is
// validated, and so charged a revision by ResourceQuota admission, once per
// write. Updates made back to back, each on the object the previous one
// wrote, must not be tried first on the watch cache's copy, which may not
// have the previous write yet: that attempt would fail its compare-and-swap
// after admission had charged it, and a namespace at its revision quota would
// refuse the next change.
func TestChangeAdmittedOncePerWrite(t *testing.T) {
	s, _, _ := newHistoryStorage(t, history.Options{})
	ctx := genericapirequest.WithUser(genericregistrytest.NewNamespaceScopeContext(s.ConfigSet.Store, "test"), &user.DefaultInfo{Name: "alice"})
	if _, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const changes = 50
	admitted := 0
	countAdmission := func(context.Context, runtime.Object, runtime.Object) error {
		admitted++
		return nil
	}
	for i := range changes {
		// As a patch does: the change is made to the object the attempt reads.
		change := rest.DefaultUpdatedObjectInfo(nil, func(_ context.Context, _, old runtime.Object) (runtime.Object, error) {
			cs := old.DeepCopyObject().(*config.ConfigSet)
			cs.Spec.Data["LOG_LEVEL"] = fmt.Sprint(i)
			return cs, nil
		})
		if _, _, err := s.ConfigSet.Update(ctx, "foo", change, nil, countAdmission, false, &metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if admitted != changes {
		t.Errorf("%d changes were admitted %d times, want once each", changes, admitted)
	}
}
