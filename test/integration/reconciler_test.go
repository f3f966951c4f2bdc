package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
)

// replicaPair is two Capstan replicas on one etcd, as after a crash of a replica
// that the other outlives: both run the history reconciler.
type replicaPair struct {
	a, b   versioned.Interface
	etcd   *clientv3.Client
	prefix string
}

func startReplicaPair(t *testing.T) *replicaPair {
	t.Helper()
	// Servers of their own: two replicas on one etcd, with
	// --history-repair-grace-period=1s.
	a := capstantesting.StartTestServer(t, "--history-repair-grace-period=1s")
	b := capstantesting.StartTestServer(t, append(a.EtcdFlags(),
		"--history-repair-grace-period=1s",
		// The second replica must decrypt what the first wrote.
		"--encryption-provider-config="+filepath.Join(a.DataDir, "encryption-config.yaml"),
	)...)
	cfg, err := a.EtcdClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = etcd.Close() })
	return &replicaPair{
		a:      versioned.NewForConfigOrDie(a.ClientConfig),
		b:      versioned.NewForConfigOrDie(b.ClientConfig),
		etcd:   etcd,
		prefix: "/registry/config.capstan.dev/configrevisions/",
	}
}

// replicaRevisions lists the revisions of a ConfigSet through one replica, by revision number.
func replicaRevisions(t *testing.T, c versioned.Interface, ns, name string) []v1beta1.ConfigRevision {
	t.Helper()
	list, err := c.ConfigV1beta1().ConfigRevisions(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "configSetName=" + name})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Revision < list.Items[j].Revision })
	return list.Items
}

// eventuallyOnBoth polls until the revisions of ns/name, read through both
// replicas, are exactly want.
func eventuallyOnBoth(t *testing.T, p *replicaPair, ns, name string, want []int64) []v1beta1.ConfigRevision {
	t.Helper()
	var last []v1beta1.ConfigRevision
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		last = replicaRevisions(t, p.a, ns, name)
		if fmt.Sprint(revisionNumbers(last)) != fmt.Sprint(want) {
			return false, nil
		}
		return fmt.Sprint(revisionNumbers(replicaRevisions(t, p.b, ns, name))) == fmt.Sprint(want), nil
	})
	if err != nil {
		t.Fatalf("revisions of %s/%s are %v, want %v", ns, name, revisionNumbers(last), want)
	}
	return last
}

func TestReconcilerRepairsHistoryWithTwoReplicas(t *testing.T) {
	p := startReplicaPair(t)
	ctx := context.Background()

	t.Run("a missing current revision is restored once", func(t *testing.T) {
		ns := "rc-missing"
		cs, err := p.a.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: map[string]string{"config.capstan.dev/change-cause": "first"}},
			Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"k": "v1"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cs.Spec.Data["k"] = "v2"
		if cs, err = p.b.ConfigV1beta1().ConfigSets(ns).Update(ctx, cs, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventuallyOnBoth(t, p, ns, "app", []int64{1, 2})

		// A crash between the ConfigSet write and its revision write leaves
		// exactly this: the ConfigSet at revision 2, no revision 2 in etcd.
		if _, err := p.etcd.Delete(ctx, p.prefix+ns+"/"+config.RevisionName("app", 2)); err != nil {
			t.Fatal(err)
		}
		revs := eventuallyOnBoth(t, p, ns, "app", []int64{1, 2})
		restored := revs[1]
		if restored.Author != history.ReconcilerUser {
			t.Errorf("restored revision author = %q, want %q", restored.Author, history.ReconcilerUser)
		}
		if restored.Data["k"] != "v2" || restored.ChangeCause != "first" {
			t.Errorf("restored revision = %+v, want the ConfigSet's entries at revision 2", restored)
		}
		if len(restored.OwnerReferences) != 1 || restored.OwnerReferences[0].UID != cs.UID {
			t.Errorf("restored revision owner = %+v, want ConfigSet %s", restored.OwnerReferences, cs.UID)
		}
	})

	t.Run("revisions of a ConfigSet that is gone are deleted", func(t *testing.T) {
		ns := "rc-orphan"
		cs, err := p.a.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "gone"},
			Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"k": "v"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventuallyOnBoth(t, p, ns, "gone", []int64{1})
		// A crash after the ConfigSet's delete but before its revisions'.
		key := "/registry/config.capstan.dev/configsets/" + ns + "/gone"
		if _, err := p.etcd.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		eventuallyOnBoth(t, p, ns, "gone", []int64{})
		if _, err := p.a.ConfigV1beta1().ConfigSets(ns).Get(ctx, "gone", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("ConfigSet %s still there: %v", cs.Name, err)
		}
	})

	t.Run("history beyond a lowered limit is pruned", func(t *testing.T) {
		ns := "rc-limit"
		cs, err := p.a.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "app"},
			Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"n": "0"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			cs.Spec.Data["n"] = fmt.Sprint(i)
			if cs, err = p.a.ConfigV1beta1().ConfigSets(ns).Update(ctx, cs, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		eventuallyOnBoth(t, p, ns, "app", []int64{1, 2, 3, 4, 5, 6})
		// Lowering the limit changes no entries, so the request writes no
		// revision; the reconciler prunes to the new limit.
		cs.Spec.RevisionHistoryLimit = ptr.To[int32](2)
		if _, err = p.b.ConfigV1beta1().ConfigSets(ns).Update(ctx, cs, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventuallyOnBoth(t, p, ns, "app", []int64{5, 6})
	})

	t.Run("a write through one replica is read through the other", func(t *testing.T) {
		ns := "rc-read"
		if _, err := p.a.ConfigV1beta1().ConfigSets(ns).Create(ctx, &v1beta1.ConfigSet{
			ObjectMeta: metav1.ObjectMeta{Name: "shared"},
			Spec:       v1beta1.ConfigSetSpec{SecretData: map[string][]byte{"token": []byte("s3cr3t")}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		got, err := p.b.ConfigV1beta1().ConfigSets(ns).Get(ctx, "shared", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Spec.SecretData["token"]) != "s3cr3t" || got.Status.CurrentRevision != 1 {
			t.Errorf("replica b read %+v", got)
		}
	})
}

// TestWithoutHistory: --record-history=false (for measuring what history
// costs) keeps the revision counter but writes no revisions, and no
// reconciler restores them.
func TestWithoutHistory(t *testing.T) {
	// A server of its own: --record-history=false.
	ts := capstantesting.StartTestServer(t, "--record-history=false", "--history-repair-grace-period=100ms")
	c := versioned.NewForConfigOrDie(ts.ClientConfig)
	ctx := context.Background()
	cs, err := c.ConfigV1beta1().ConfigSets("nohist").Create(ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec:       v1beta1.ConfigSetSpec{Data: map[string]string{"k": "1"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs.Spec.Data["k"] = "2"
	if cs, err = c.ConfigV1beta1().ConfigSets("nohist").Update(ctx, cs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if cs.Status.CurrentRevision != 2 {
		t.Errorf("currentRevision = %d, want 2", cs.Status.CurrentRevision)
	}
	time.Sleep(time.Second)
	if revs := replicaRevisions(t, c, "nohist", "app"); len(revs) != 0 {
		t.Errorf("revisions %v written with --record-history=false", revisionNumbers(revs))
	}
}
