package e2e

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
)

// TestSharedInformer runs a generated shared informer on the admin kubeconfig
// for kube-apiserver: it syncs an existing ConfigSet into its lister and
// delivers an add, an update and a delete.
func TestSharedInformer(t *testing.T) {
	const ns = "e2e-informer"
	createNamespace(t, ns, nil)
	client, _ := adminClients(t)
	ctx := t.Context()
	sets := client.ConfigV1beta1().ConfigSets(ns)
	if _, err := sets.Create(ctx, &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "existing"},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	informer := factory.Config().V1beta1().ConfigSets()
	events := make(chan string, 100)
	describe := func(obj any) string {
		cs, ok := obj.(*configv1beta1.ConfigSet)
		if !ok {
			if tomb, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
				cs, _ = tomb.Obj.(*configv1beta1.ConfigSet)
			}
		}
		if cs == nil {
			return fmt.Sprintf("%T", obj)
		}
		return fmt.Sprintf("%s A=%s rev=%d", cs.Name, cs.Spec.Data["A"], cs.Status.CurrentRevision)
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { events <- "add " + describe(obj) },
		UpdateFunc: func(old, obj any) { events <- "update " + describe(old) + " -> " + describe(obj) },
		DeleteFunc: func(obj any) { events <- "delete " + describe(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer func() {
		close(stop)
		factory.Shutdown()
	}()
	factory.Start(stop)
	for typ, ok := range factory.WaitForCacheSync(stop) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	cached, err := informer.Lister().ConfigSets(ns).Get("existing")
	if err != nil || cached.Spec.Data["A"] != "1" {
		t.Fatalf("lister after sync: %v, %v", cached, err)
	}

	expect := func(want string) {
		t.Helper()
		select {
		case got := <-events:
			if got != want {
				t.Fatalf("event %q, want %q", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no event %q within 30s", want)
		}
	}
	expect("add existing A=1 rev=1")

	created, err := sets.Create(ctx, &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "watched"},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"A": "1"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect("add watched A=1 rev=1")
	created.Spec.Data["A"] = "2"
	if _, err := sets.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("update watched A=1 rev=1 -> watched A=2 rev=2")
	if err := sets.Delete(ctx, "watched", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("delete watched A=2 rev=2")
	if _, err := informer.Lister().ConfigSets(ns).Get("watched"); err == nil {
		t.Fatal("the lister still has the deleted ConfigSet")
	}
}
