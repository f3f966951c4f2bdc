package integration

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/informers/externalversions"
)

// TestAPIWatch resumes a watch from a noted resourceVersion and filters a
// watch with a label selector.
func TestAPIWatch(t *testing.T) {
	e := sharedEnv(t)

	t.Run("resume from resourceVersion", func(t *testing.T) {
		const ns = "watch-resume"
		client := e.cs.ConfigV1beta1().ConfigSets(ns)
		cur := e.mustCreate(t, ns, configSet("app", map[string]string{"step": "0"}, nil))
		noted := cur.ResourceVersion
		var rvs []string
		for i := 1; i <= 3; i++ {
			cur.Spec.Data = map[string]string{"step": fmt.Sprint(i)}
			next, err := client.Update(e.ctx, cur, metav1.UpdateOptions{})
			if err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
			rvs = append(rvs, next.ResourceVersion)
			cur = next
		}

		w, err := client.Watch(e.ctx, metav1.ListOptions{ResourceVersion: noted})
		if err != nil {
			t.Fatalf("watch from %s: %v", noted, err)
		}
		defer w.Stop()
		for i := 1; i <= 3; i++ {
			ev := nextEvent(t, w)
			obj, ok := ev.Object.(*v1beta1.ConfigSet)
			if !ok {
				t.Fatalf("event %d carries %T", i, ev.Object)
			}
			if ev.Type != watch.Modified {
				t.Fatalf("event %d type = %s, want MODIFIED (%s)", i, ev.Type, describe(obj))
			}
			if want := map[string]string{"step": fmt.Sprint(i)}; !reflect.DeepEqual(obj.Spec.Data, want) {
				t.Errorf("event %d data = %v, want %v", i, obj.Spec.Data, want)
			}
			if obj.ResourceVersion != rvs[i-1] {
				t.Errorf("event %d resourceVersion = %s, want %s", i, obj.ResourceVersion, rvs[i-1])
			}
			if obj.Status.CurrentRevision != int64(i+1) {
				t.Errorf("event %d currentRevision = %d, want %d", i, obj.Status.CurrentRevision, i+1)
			}
		}
		noEvent(t, w)

		// A watch from the last resourceVersion sees only what comes after it.
		w2, err := client.Watch(e.ctx, metav1.ListOptions{ResourceVersion: rvs[2]})
		if err != nil {
			t.Fatalf("watch from %s: %v", rvs[2], err)
		}
		defer w2.Stop()
		if err := client.Delete(e.ctx, "app", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete: %v", err)
		}
		ev := nextEvent(t, w2)
		if obj, ok := ev.Object.(*v1beta1.ConfigSet); ev.Type != watch.Deleted || !ok || obj.Name != "app" {
			t.Fatalf("event after delete = %s %s, want DELETED app", ev.Type, describe(ev.Object))
		}
	})

	t.Run("label selector", func(t *testing.T) {
		const ns = "watch-labels"
		client := e.cs.ConfigV1beta1().ConfigSets(ns)
		list, err := client.List(e.ctx, metav1.ListOptions{LabelSelector: "app=yes"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		w, err := client.Watch(e.ctx, metav1.ListOptions{LabelSelector: "app=yes", ResourceVersion: list.ResourceVersion})
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		defer w.Stop()

		labelled := func(name, value string) *v1beta1.ConfigSet {
			obj := configSet(name, map[string]string{"k": "v"}, nil)
			obj.Labels = map[string]string{"app": value}
			return obj
		}
		// Events arrive in resourceVersion order, so a leaked event for a
		// non-matching object would come before the matching one.
		other := e.mustCreate(t, ns, labelled("other", "no"))
		e.mustCreate(t, ns, labelled("match", "yes"))
		ev := nextEvent(t, w)
		if obj, ok := ev.Object.(*v1beta1.ConfigSet); ev.Type != watch.Added || !ok || obj.Name != "match" {
			t.Fatalf("first event = %s %s, want ADDED match", ev.Type, describe(ev.Object))
		}

		other.Spec.Data["k"] = "changed"
		if other, err = client.Update(e.ctx, other, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update other: %v", err)
		}
		// Relabelling an object into the selector makes it appear as ADDED;
		// relabelling it out makes it disappear as DELETED.
		other.Labels["app"] = "yes"
		if other, err = client.Update(e.ctx, other, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("relabel other in: %v", err)
		}
		ev = nextEvent(t, w)
		if obj, ok := ev.Object.(*v1beta1.ConfigSet); ev.Type != watch.Added || !ok || obj.Name != "other" || obj.Spec.Data["k"] != "changed" {
			t.Fatalf("event after relabel in = %s %s, want ADDED other", ev.Type, describe(ev.Object))
		}
		other.Labels["app"] = "no"
		if _, err = client.Update(e.ctx, other, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("relabel other out: %v", err)
		}
		ev = nextEvent(t, w)
		if obj, ok := ev.Object.(*v1beta1.ConfigSet); ev.Type != watch.Deleted || !ok || obj.Name != "other" {
			t.Fatalf("event after relabel out = %s %s, want DELETED other", ev.Type, describe(ev.Object))
		}
		if err := client.Delete(e.ctx, "other", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete other: %v", err)
		}
		noEvent(t, w)
	})
}

// informerEvent is what the informer test's handler saw.
type informerEvent struct {
	kind string
	name string
	data map[string]string
}

// TestAPIInformer runs the generated shared informer for v1beta1 ConfigSets
// and checks its cache sync, its handler's events and its lister.
func TestAPIInformer(t *testing.T) {
	e := sharedEnv(t)
	const ns = "informer"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	e.mustCreate(t, ns, configSet("before", map[string]string{"k": "early"}, nil))
	// An object in another namespace, which the namespaced factory must not see.
	if _, err := e.cs.ConfigV1beta1().ConfigSets("informer-elsewhere").Create(e.ctx, configSet("elsewhere", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create elsewhere: %v", err)
	}

	factory := externalversions.NewSharedInformerFactoryWithOptions(e.cs, 0, externalversions.WithNamespace(ns))
	informer := factory.Config().V1beta1().ConfigSets()
	events := make(chan informerEvent, 100)
	record := func(kind string, obj interface{}) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		cs := obj.(*v1beta1.ConfigSet)
		events <- informerEvent{kind: kind, name: cs.Namespace + "/" + cs.Name, data: cs.Spec.Data}
	}
	if _, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { record("add", obj) },
		UpdateFunc: func(_, obj interface{}) { record("update", obj) },
		DeleteFunc: func(obj interface{}) { record("delete", obj) },
	}); err != nil {
		t.Fatalf("adding handler: %v", err)
	}
	lister := informer.Lister()
	stop := make(chan struct{})
	defer func() {
		close(stop)
		factory.Shutdown()
	}()
	factory.Start(stop)
	for typ, synced := range factory.WaitForCacheSync(stop) {
		if !synced {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}

	next := func() informerEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(eventTimeout):
			t.Fatalf("no informer event within %v", eventTimeout)
		}
		return informerEvent{}
	}
	expect := func(want informerEvent) {
		t.Helper()
		if got := next(); !reflect.DeepEqual(got, want) {
			t.Fatalf("informer event = %+v, want %+v", got, want)
		}
	}

	expect(informerEvent{kind: "add", name: ns + "/before", data: map[string]string{"k": "early"}})
	if got, err := lister.ConfigSets(ns).Get("before"); err != nil || got.Spec.Data["k"] != "early" {
		t.Fatalf("lister after sync: %v, %v", got, err)
	}

	created := e.mustCreate(t, ns, configSet("live", map[string]string{"k": "1"}, nil))
	expect(informerEvent{kind: "add", name: ns + "/live", data: map[string]string{"k": "1"}})
	got, err := lister.ConfigSets(ns).Get("live")
	if err != nil {
		t.Fatalf("lister get after add: %v", err)
	}
	if got.UID != created.UID || got.ResourceVersion != created.ResourceVersion {
		t.Errorf("lister returned uid/rv %s/%s, want %s/%s", got.UID, got.ResourceVersion, created.UID, created.ResourceVersion)
	}

	created.Spec.Data["k"] = "2"
	if _, err := client.Update(e.ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	expect(informerEvent{kind: "update", name: ns + "/live", data: map[string]string{"k": "2"}})
	if got, err := lister.ConfigSets(ns).Get("live"); err != nil || got.Spec.Data["k"] != "2" || got.Status.CurrentRevision != 2 {
		t.Errorf("lister after update: %v, %v; want k=2, revision 2", got, err)
	}

	if err := client.Delete(e.ctx, "live", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	expect(informerEvent{kind: "delete", name: ns + "/live", data: map[string]string{"k": "2"}})
	all, err := lister.List(labels.Everything())
	if err != nil {
		t.Fatalf("lister list: %v", err)
	}
	if names := namesOf(all); !reflect.DeepEqual(names, []string{"before"}) {
		t.Errorf("lister after delete = %v, want [before] only (namespaced factory)", names)
	}
	select {
	case ev := <-events:
		t.Errorf("unexpected extra informer event %+v", ev)
	case <-time.After(quietPeriod):
	}
}
