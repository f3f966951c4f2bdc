package storagedecorator

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/storage"
)

// hangingStorage blocks every call until its context ends, as etcd's client
// does while etcd is gone, and returns what the client returns then.
type hangingStorage struct {
	storage.Interface
	deadline time.Time
}

func (h *hangingStorage) wait(ctx context.Context) error {
	h.deadline, _ = ctx.Deadline()
	<-ctx.Done()
	return ctx.Err()
}

func (h *hangingStorage) Get(ctx context.Context, _ string, _ storage.GetOptions, _ runtime.Object) error {
	return h.wait(ctx)
}

func (h *hangingStorage) GuaranteedUpdate(ctx context.Context, _ string, _ runtime.Object, _ bool, _ *storage.Preconditions, _ storage.UpdateFunc, _ runtime.Object) error {
	return h.wait(ctx)
}

// A storage call that outlives the request gives up before the request's
// deadline, as a 504 the handler can still write, instead of racing the
// server's timeout filter.
func TestStorageGivesUpBeforeTheRequestDeadline(t *testing.T) {
	inner := &hangingStorage{}
	s := &translating{Interface: inner, resource: schema.GroupResource{Group: "config.capstan.dev", Resource: "configsets"}}
	for name, call := range map[string]func(ctx context.Context) error{
		"get": func(ctx context.Context) error { return s.Get(ctx, "k", storage.GetOptions{}, nil) },
		"update": func(ctx context.Context) error {
			return s.GuaranteedUpdate(ctx, "k", nil, false, nil, nil, nil)
		},
	} {
		t.Run(name, func(t *testing.T) {
			requestDeadline := time.Now().Add(2 * time.Second)
			ctx, cancel := context.WithDeadline(context.Background(), requestDeadline)
			defer cancel()
			err := call(ctx)
			if !apierrors.IsTimeout(err) {
				t.Fatalf("got %v, want a 504 Timeout", err)
			}
			if ctx.Err() != nil {
				t.Fatalf("the call returned after the request's deadline")
			}
			if margin := requestDeadline.Sub(inner.deadline); margin < 100*time.Millisecond || margin > handlerMargin {
				t.Fatalf("storage deadline %v before the request's, want between 100ms and %v", margin, handlerMargin)
			}
		})
	}

	// Without a deadline the call keeps the caller's context, and errors
	// are not turned into timeouts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Get(ctx, "k", storage.GetOptions{}, nil); apierrors.IsTimeout(err) || err != context.Canceled {
		t.Fatalf("cancelled request without a deadline: got %v, want context.Canceled", err)
	}
}
