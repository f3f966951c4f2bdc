package storage

import (
	"context"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	configrevisionstorage "capstan.dev/capstan/pkg/registry/config/configrevision/storage"
	"capstan.dev/capstan/pkg/registry/registrytest"
)

// uncertainRecorder remembers the states handed to Uncertain.
type uncertainRecorder struct {
	history.Recorder
	mu        sync.Mutex
	uncertain []*config.ConfigSet
}

func (r *uncertainRecorder) Uncertain(old *config.ConfigSet) {
	r.mu.Lock()
	r.uncertain = append(r.uncertain, old)
	r.mu.Unlock()
	r.Recorder.Uncertain(old)
}

// failingInfo is an update whose outcome is err, after it has seen the stored object.
type failingInfo struct {
	rest.UpdatedObjectInfo
	err error
}

func (i failingInfo) UpdatedObject(ctx context.Context, old runtime.Object) (runtime.Object, error) {
	return nil, i.err
}

// An update that ends without an answer from storage may still be applied
// by etcd; the state it started from is then known to no request, so it is
// handed to history. A refused update changes nothing and hands nothing.
func TestUncertainUpdatesHandTheirStartToHistory(t *testing.T) {
	optsGetter := registrytest.NewRESTOptionsGetter(t, false)
	revisions, err := configrevisionstorage.NewStore(registrytest.Scheme, optsGetter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(revisions.DestroyFunc)
	rec := &uncertainRecorder{Recorder: registrytest.NewHistory(t, revisions, history.Options{})}
	s, err := NewStorage(registrytest.Scheme, optsGetter, rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.ConfigSet.Store.DestroyFunc)
	ctx := genericapirequest.WithNamespace(genericapirequest.NewContext(), "test")
	if _, err := s.ConfigSet.Create(ctx, validConfigSet(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"conflict", apierrors.NewConflict(config.Resource("configsets"), "foo", nil), 0},
		{"invalid", apierrors.NewBadRequest("no"), 0},
		{"timeout", apierrors.NewTimeoutError("etcd did not answer", 0), 1},
		{"internal", apierrors.NewInternalError(context.DeadlineExceeded), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.uncertain = nil
			rec.mu.Unlock()
			info := failingInfo{UpdatedObjectInfo: rest.DefaultUpdatedObjectInfo(validConfigSet()), err: tc.err}
			if _, _, err := s.ConfigSet.Update(ctx, "foo", info, rest.ValidateAllObjectFunc, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{}); err == nil {
				t.Fatal("the update succeeded")
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.uncertain) != tc.want {
				t.Fatalf("handed %d states to history, want %d", len(rec.uncertain), tc.want)
			}
			if tc.want > 0 && (rec.uncertain[0].Name != "foo" || rec.uncertain[0].Status.CurrentRevision != 1) {
				t.Errorf("handed %s at revision %d, want foo at 1", rec.uncertain[0].Name, rec.uncertain[0].Status.CurrentRevision)
			}
		})
	}
}
