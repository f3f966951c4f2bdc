package e2e

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/test/utils/controlplane"
)

// availabilityChange bounds how long the aggregator takes to notice that
// Capstan went away or came back: it rechecks every APIService at least
// every 30 seconds.
const availabilityChange = 90 * time.Second

// TestAPIServiceAvailability stops Capstan and starts it again: both
// APIServices go from Available=True to False and back, requests through
// kube-apiserver fail with 503 meanwhile, and what was stored survives.
func TestAPIServiceAvailability(t *testing.T) {
	const ns = "e2e-availability"
	createNamespace(t, ns, nil)
	client, _ := adminClients(t)
	ctx := t.Context()
	sets := client.ConfigV1beta1().ConfigSets(ns)
	if _, err := sets.Create(ctx, &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "durable"},
		Spec:       configv1beta1.ConfigSetSpec{Data: map[string]string{"KEPT": "yes"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	conditions, err := testCluster.APIServiceConditions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"v1beta1.config.capstan.dev", "v1alpha1.config.capstan.dev"} {
		if c := conditions[name]; c.Status != "True" || c.Reason != "Passed" {
			t.Fatalf("APIService %s: %+v, want Available=True reason Passed", name, c)
		}
	}

	// Whatever fails below, the later tests need Capstan back.
	t.Cleanup(func() {
		if p := testCluster.Process(controlplane.ProcessCapstan); p != nil && !p.Running() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*availabilityChange)
			defer cancel()
			if err := testCluster.StartCapstan(ctx); err != nil {
				t.Errorf("restarting Capstan: %v", err)
				return
			}
			if err := testCluster.WaitAvailable(ctx); err != nil {
				t.Errorf("after restarting Capstan: %v", err)
			}
		}
	})

	stopped := time.Now()
	if err := testCluster.StopCapstan(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Capstan stopped in %s", time.Since(stopped).Round(100*time.Millisecond))

	t.Run("requests through kube-apiserver get 503", func(t *testing.T) {
		_, err := sets.Get(ctx, "durable", metav1.GetOptions{})
		if !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("get while Capstan is down: %v, want 503", err)
		}
	})

	t.Run("the APIServices turn Available=False", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, availabilityChange)
		defer cancel()
		if err := testCluster.WaitUnavailable(wctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("unavailable %s after the stop began", time.Since(stopped).Round(100*time.Millisecond))
		conditions, err := testCluster.APIServiceConditions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range conditions {
			if c.Reason != "FailedDiscoveryCheck" {
				t.Errorf("APIService %s: %+v, want reason FailedDiscoveryCheck", name, c)
			}
		}
	})

	t.Run("after a restart they are Available again and the data is there", func(t *testing.T) {
		started := time.Now()
		wctx, cancel := context.WithTimeout(ctx, availabilityChange)
		defer cancel()
		if err := testCluster.StartCapstan(wctx); err != nil {
			t.Fatal(err)
		}
		if err := testCluster.WaitAvailable(wctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("available %s after the start", time.Since(started).Round(100*time.Millisecond))
		// The aggregator's proxy learns of the new status from its own
		// APIService informer, a moment after the status is written: until
		// then it still answers 503 itself.
		var got *configv1beta1.ConfigSet
		eventually(t, availabilityChange, "a get through kube-apiserver", func() error {
			var err error
			got, err = sets.Get(ctx, "durable", metav1.GetOptions{})
			if err != nil && !apierrors.IsServiceUnavailable(err) {
				t.Fatalf("get after the restart: %v", err)
			}
			return err
		})
		if got.Spec.Data["KEPT"] != "yes" || got.Status.CurrentRevision != 1 {
			t.Fatalf("after the restart: %+v", got)
		}
	})
}
