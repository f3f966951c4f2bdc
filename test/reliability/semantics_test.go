package reliability

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// TestStorageSemantics checks Kubernetes' storage semantics through the
// generated clientset against a running Capstan.
func TestStorageSemantics(t *testing.T) {
	ts := capstantesting.StartTestServer(t)
	cs := clientsetFor(t, ts)
	etcd := etcdClient(t, ts)
	ctx := context.Background()

	t.Run("two writers with one resourceVersion: one 200, one 409, 1000 rounds", func(t *testing.T) {
		const rounds = 1000
		client := cs.ConfigV1beta1().ConfigSets("occ")
		obj, err := client.Create(ctx, configSet("contended", map[string]string{"round": "0"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ok, conflict, other int
		for round := 1; round <= rounds; round++ {
			base, err := client.Get(ctx, obj.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("round %d: get: %v", round, err)
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, 2)
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mine := base.DeepCopy()
					mine.Spec.Data = map[string]string{"round": strconv.Itoa(round), "writer": strconv.Itoa(w)}
					<-start
					_, errs[w] = client.Update(ctx, mine, metav1.UpdateOptions{})
				}()
			}
			close(start)
			wg.Wait()
			roundOK, roundConflict := 0, 0
			for _, err := range errs {
				switch {
				case err == nil:
					roundOK++
				case apierrors.IsConflict(err):
					roundConflict++
				default:
					other++
					t.Errorf("round %d: unexpected error %v", round, err)
				}
			}
			ok += roundOK
			conflict += roundConflict
			if roundOK != 1 || roundConflict != 1 {
				t.Fatalf("round %d: %d successes and %d conflicts, want 1 and 1 (errors %v)", round, roundOK, roundConflict, errs)
			}
		}
		final, err := client.Get(ctx, obj.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if final.Spec.Data["round"] != strconv.Itoa(rounds) {
			t.Errorf("final data %v, want round=%d", final.Spec.Data, rounds)
		}
		if final.Status.CurrentRevision != rounds+1 {
			t.Errorf("status.currentRevision = %d, want %d (1 + one per acknowledged update)", final.Status.CurrentRevision, rounds+1)
		}
		t.Logf("rounds %d: 200s %d, 409s %d, other %d", rounds, ok, conflict, other)
	})

	t.Run("16 concurrent creates of one name: one 201, fifteen 409 AlreadyExists", func(t *testing.T) {
		const names, writers = 10, 16
		client := cs.ConfigV1beta1().ConfigSets("create-race")
		for n := range names {
			name := fmt.Sprintf("race-%d", n)
			var wg sync.WaitGroup
			var created, exists atomic.Int32
			start := make(chan struct{})
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := client.Create(ctx, configSet(name, map[string]string{"writer": strconv.Itoa(w)}), metav1.CreateOptions{})
					switch {
					case err == nil:
						created.Add(1)
					case apierrors.IsAlreadyExists(err):
						exists.Add(1)
					default:
						t.Errorf("%s writer %d: %v", name, w, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if created.Load() != 1 || exists.Load() != writers-1 {
				t.Errorf("%s: %d created, %d AlreadyExists; want 1 and %d", name, created.Load(), exists.Load(), writers-1)
			}
		}
	})

	t.Run("delete preconditions", func(t *testing.T) {
		client := cs.ConfigV1beta1().ConfigSets("preconditions")
		obj, err := client.Create(ctx, configSet("guarded", map[string]string{"k": "v"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		updated := obj.DeepCopy()
		updated.Spec.Data["k"] = "v2"
		if updated, err = client.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		staleRV := obj.ResourceVersion
		err = client.Delete(ctx, obj.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &staleRV}})
		if !apierrors.IsConflict(err) {
			t.Errorf("delete with stale resourceVersion precondition: %v, want 409", err)
		}
		wrongUID := types.UID("00000000-0000-0000-0000-000000000000")
		err = client.Delete(ctx, obj.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrongUID}})
		if !apierrors.IsConflict(err) {
			t.Errorf("delete with wrong UID precondition: %v, want 409", err)
		}
		if _, err := client.Get(ctx, obj.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("object gone after refused deletes: %v", err)
		}
		rv, uid := updated.ResourceVersion, updated.UID
		if err := client.Delete(ctx, obj.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv, UID: &uid}}); err != nil {
			t.Fatalf("delete with matching preconditions: %v", err)
		}
		if _, err := client.Get(ctx, obj.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get after delete: %v, want 404", err)
		}
	})

	t.Run("watch resumption: exactly the 100 missed events, in order; 410 after compaction; relist recovers", func(t *testing.T) {
		const ns, missed = "watch-resume", 100
		client := cs.ConfigV1beta1().ConfigSets(ns)
		list, err := client.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := client.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			t.Fatal(err)
		}
		first, err := client.Create(ctx, configSet("w-0", map[string]string{"i": "0"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, w)
		lastSeen := ev.Object.(*v1beta1.ConfigSet).ResourceVersion
		if ev.Type != watch.Added || lastSeen != first.ResourceVersion {
			t.Fatalf("first event %s rv %s, want ADDED rv %s", ev.Type, lastSeen, first.ResourceVersion)
		}
		w.Stop()

		type write struct {
			typ  watch.EventType
			name string
			rv   string
		}
		var writes []write
		for i := 1; i <= missed; i++ {
			switch i % 4 {
			case 0: // update w-0
				cur, err := client.Get(ctx, "w-0", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				cur.Spec.Data["i"] = strconv.Itoa(i)
				out, err := client.Update(ctx, cur, metav1.UpdateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				writes = append(writes, write{watch.Modified, "w-0", out.ResourceVersion})
			case 3: // delete the object created in the previous step
				name := fmt.Sprintf("w-%d", i-1)
				if err := client.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				writes = append(writes, write{watch.Deleted, name, ""})
			default:
				out, err := client.Create(ctx, configSet(fmt.Sprintf("w-%d", i), map[string]string{"i": strconv.Itoa(i)}), metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				writes = append(writes, write{watch.Added, out.Name, out.ResourceVersion})
			}
		}
		w2, err := client.Watch(ctx, metav1.ListOptions{ResourceVersion: lastSeen})
		if err != nil {
			t.Fatal(err)
		}
		prevRV := int64(0)
		for i, want := range writes {
			ev := nextEvent(t, w2)
			obj, ok := ev.Object.(*v1beta1.ConfigSet)
			if !ok {
				t.Fatalf("event %d: %s %T, want ConfigSet", i, ev.Type, ev.Object)
			}
			if ev.Type != want.typ || obj.Name != want.name || (want.rv != "" && obj.ResourceVersion != want.rv) {
				t.Fatalf("event %d: %s %s rv %s, want %s %s rv %s", i, ev.Type, obj.Name, obj.ResourceVersion, want.typ, want.name, want.rv)
			}
			rv, _ := strconv.ParseInt(obj.ResourceVersion, 10, 64)
			if rv <= prevRV {
				t.Fatalf("event %d: rv %d not after %d", i, rv, prevRV)
			}
			prevRV = rv
		}
		noEvent(t, w2, 2*time.Second)
		w2.Stop()
		t.Logf("resumed from rv %s: %d events, exactly the %d writes", lastSeen, len(writes), missed)

		compacted := compactToLatest(ctx, t, etcd)
		// A warm watch cache still holds these events in memory and may serve
		// them, as kube-apiserver does; record what it does.
		if w3, err := client.Watch(ctx, metav1.ListOptions{ResourceVersion: lastSeen}); err != nil {
			t.Logf("warm replica, watch from rv %s after compaction to %d: %v", lastSeen, compacted, err)
		} else {
			n := 0
			for done := false; !done; {
				select {
				case ev, ok := <-w3.ResultChan():
					if !ok || ev.Type == watch.Error {
						done = true
					} else {
						n++
					}
				case <-time.After(time.Second):
					done = true
				}
			}
			w3.Stop()
			t.Logf("warm replica, watch from rv %s after compaction to %d: served %d events from the watch cache", lastSeen, compacted, n)
		}
		// A replica whose cache starts after the compaction must answer 410.
		client = coldReplica(t, ts).ConfigV1beta1().ConfigSets(ns)
		var gone bool
		var lastErr error
		deadline := time.Now().Add(30 * time.Second)
		for !gone && time.Now().Before(deadline) {
			w3, err := client.Watch(ctx, metav1.ListOptions{ResourceVersion: lastSeen})
			if err != nil {
				lastErr = err
				gone = apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
				if !gone {
					t.Fatalf("watch from compacted rv %s: %v, want 410", lastSeen, err)
				}
				break
			}
			select {
			case ev, ok := <-w3.ResultChan():
				if ok && ev.Type == watch.Error {
					status := apierrors.FromObject(ev.Object)
					lastErr = status
					gone = apierrors.IsResourceExpired(status) || apierrors.IsGone(status)
				} else if ok {
					lastErr = fmt.Errorf("got %s event instead of 410", ev.Type)
				}
			case <-time.After(2 * time.Second):
				lastErr = fmt.Errorf("no event within 2s")
			}
			w3.Stop()
			if !gone {
				time.Sleep(500 * time.Millisecond)
			}
		}
		if !gone {
			t.Fatalf("cold replica, watch from rv %s after compaction to %d: never 410 within 30s (last: %v)", lastSeen, compacted, lastErr)
		}
		t.Logf("cold replica, watch from rv %s after compaction to %d: %v", lastSeen, compacted, lastErr)

		relist, err := client.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("relist: %v", err)
		}
		w4, err := client.Watch(ctx, metav1.ListOptions{ResourceVersion: relist.ResourceVersion})
		if err != nil {
			t.Fatalf("watch after relist: %v", err)
		}
		defer w4.Stop()
		out, err := client.Create(ctx, configSet("after-relist", map[string]string{"k": "v"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ev = nextEvent(t, w4)
		if ev.Type != watch.Added || ev.Object.(*v1beta1.ConfigSet).ResourceVersion != out.ResourceVersion {
			t.Fatalf("after relist: %s, want ADDED of after-relist", ev.Type)
		}
	})

	t.Run("paginated list under concurrent writes is one consistent snapshot", func(t *testing.T) {
		const ns, objects, pageSize = "paging", 200, 15
		client := cs.ConfigV1beta1().ConfigSets(ns)
		for i := range objects {
			if _, err := client.Create(ctx, configSet(fmt.Sprintf("p-%03d", i), map[string]string{"i": "0"}), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		stop := make(chan struct{})
		var writes atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 {
					_, err := client.Create(ctx, configSet(fmt.Sprintf("new-%05d", i), nil), metav1.CreateOptions{})
					if err == nil {
						writes.Add(1)
					}
					continue
				}
				name := fmt.Sprintf("p-%03d", i%objects)
				cur, err := client.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				cur.Spec.Data = map[string]string{"i": strconv.Itoa(i)}
				if _, err := client.Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
					writes.Add(1)
				}
			}
		}()
		for attempt := range 3 {
			seen := map[string]bool{}
			var snapshotRV string
			pages := 0
			opts := metav1.ListOptions{Limit: pageSize}
			for {
				page, err := client.List(ctx, opts)
				if err != nil {
					t.Fatalf("attempt %d page %d: %v", attempt, pages, err)
				}
				pages++
				if snapshotRV == "" {
					snapshotRV = page.ResourceVersion
				} else if page.ResourceVersion != snapshotRV {
					t.Errorf("page %d has list rv %s, first page %s", pages, page.ResourceVersion, snapshotRV)
				}
				snap, _ := strconv.ParseInt(snapshotRV, 10, 64)
				for _, item := range page.Items {
					if seen[item.Name] {
						t.Errorf("duplicate %s", item.Name)
					}
					seen[item.Name] = true
					rv, _ := strconv.ParseInt(item.ResourceVersion, 10, 64)
					if rv > snap {
						t.Errorf("%s has rv %d, newer than the snapshot %d", item.Name, rv, snap)
					}
				}
				if page.Continue == "" {
					break
				}
				opts.Continue = page.Continue
				time.Sleep(20 * time.Millisecond)
			}
			// The snapshot must hold every object at its revision: compare
			// with an exact-revision list of the same snapshot.
			exact, err := client.List(ctx, metav1.ListOptions{ResourceVersion: snapshotRV, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
			if err != nil {
				t.Fatalf("exact list at %s: %v", snapshotRV, err)
			}
			if len(exact.Items) != len(seen) {
				t.Errorf("attempt %d: paginated list has %d items, exact list at rv %s has %d", attempt, len(seen), snapshotRV, len(exact.Items))
			}
			t.Logf("attempt %d: %d pages, %d items at rv %s", attempt, pages, len(seen), snapshotRV)
		}
		close(stop)
		wg.Wait()
		t.Logf("concurrent writes acknowledged during paging: %d", writes.Load())
	})

	t.Run("expired continue token: 410 with a usable inconsistent continue token", func(t *testing.T) {
		const ns, objects, pageSize = "expired-continue", 30, 10
		client := cs.ConfigV1beta1().ConfigSets(ns)
		for i := range objects {
			if _, err := client.Create(ctx, configSet(fmt.Sprintf("c-%02d", i), nil), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		first, err := client.List(ctx, metav1.ListOptions{Limit: pageSize})
		if err != nil {
			t.Fatal(err)
		}
		if first.Continue == "" {
			t.Fatal("first page has no continue token")
		}
		for i := range 5 {
			if _, err := client.Create(ctx, configSet(fmt.Sprintf("z-late-%d", i), nil), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		compactToLatest(ctx, t, etcd)
		// The warm watch cache may still serve the snapshot; record it.
		if page, err := client.List(ctx, metav1.ListOptions{Limit: pageSize, Continue: first.Continue}); err != nil {
			t.Logf("warm replica, expired continue token: %v", err)
		} else {
			t.Logf("warm replica, expired continue token: served %d items at rv %s from the watch cache snapshot", len(page.Items), page.ResourceVersion)
		}
		client = coldReplica(t, ts).ConfigV1beta1().ConfigSets(ns)
		var statusErr apierrors.APIStatus
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err = client.List(ctx, metav1.ListOptions{Limit: pageSize, Continue: first.Continue})
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				statusErr = err.(apierrors.APIStatus)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cold replica, list with a continue token older than the compaction: %v, want 410 within 30s", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		status := statusErr.Status()
		if status.Code != 410 {
			t.Errorf("status code %d, want 410", status.Code)
		}
		token := status.ListMeta.Continue
		if token == "" {
			t.Fatalf("410 Status has no metadata.continue (inconsistent continue token): %+v", status)
		}
		names := map[string]bool{}
		for _, item := range first.Items {
			names[item.Name] = true
		}
		opts := metav1.ListOptions{Limit: pageSize, Continue: token}
		for {
			page, err := client.List(ctx, opts)
			if err != nil {
				t.Fatalf("list with the inconsistent continue token: %v", err)
			}
			for _, item := range page.Items {
				if names[item.Name] {
					t.Errorf("duplicate %s after inconsistent continue", item.Name)
				}
				names[item.Name] = true
			}
			if page.Continue == "" {
				break
			}
			opts.Continue = page.Continue
		}
		if len(names) != objects+5 {
			t.Errorf("first page plus inconsistent continuation: %d objects, want %d (all 30 plus the 5 written after the first page)", len(names), objects+5)
		}
		t.Logf("410 message: %s; continuation listed %d objects", status.Message, len(names))
	})
}

// coldReplica starts a second Capstan on the same etcd and encryption
// configuration as ts: its watch cache starts empty, at the current revision.
func coldReplica(t *testing.T, ts *capstantesting.TestServer) *versioned.Clientset {
	t.Helper()
	replica := capstantesting.StartTestServer(t, append(ts.EtcdFlags(),
		"--encryption-provider-config="+filepath.Join(ts.DataDir, "encryption-config.yaml"))...)
	return clientsetFor(t, replica)
}

func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return watch.Event{}
}

func noEvent(t *testing.T, w watch.Interface, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("unexpected extra event %s %T", ev.Type, ev.Object)
		}
	case <-time.After(d):
	}
}
