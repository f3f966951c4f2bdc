package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config/v1alpha1"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	configac "capstan.dev/capstan/pkg/generated/applyconfiguration/config/v1beta1"
)

// TestHistoryWritePaths makes one change of the entries through every write
// path and checks that each makes exactly one revision, numbered after the
// previous one, that records the entries the ConfigSet held after the change,
// the author, the change-cause annotation at that moment and, for a rollback,
// the revision it restored. Then it checks the writes that must make none.
func TestHistoryWritePaths(t *testing.T) {
	e := sharedEnv(t)
	const ns, name = "hi-paths", "paths"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)

	created, err := client.Create(e.ctx, &v1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{causeAnnotation: "hi: create"}},
		Spec: v1beta1.ConfigSetSpec{
			Data:                 map[string]string{"a": "1"},
			SecretData:           map[string][]byte{"s": []byte("x")},
			RevisionHistoryLimit: ptr.To[int32](100),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.Status.CurrentRevision != 1 {
		t.Fatalf("create: currentRevision = %d, want 1", created.Status.CurrentRevision)
	}
	revs := e.requireNumbers(t, ns, name, []int64{1})
	requireRevision(t, &revs[0], created, revisionWant{
		revision: 1, data: map[string]string{"a": "1"}, secretData: map[string][]byte{"s": []byte("x")}, cause: "hi: create",
	})

	// current is what the ConfigSet holds after the last step that succeeded.
	current := created

	// step runs one write that must change the entries to wantData and
	// wantSecretData and make exactly revision current+1 with cause and
	// rollbackOf. The write returns the ConfigSet as the server stored it.
	step := func(t *testing.T, write func() (*v1beta1.ConfigSet, error), wantData map[string]string, wantSecretData map[string][]byte, cause string, rollbackOf int64) {
		t.Helper()
		before := revisionNumbers(e.listRevisions(t, ns, name))
		wantRevision := current.Status.CurrentRevision + 1
		got, err := write()
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		if got.Status.CurrentRevision != wantRevision {
			t.Errorf("response currentRevision = %d, want %d", got.Status.CurrentRevision, wantRevision)
		}
		if !sameEntries(got.Spec.Data, got.Spec.SecretData, wantData, wantSecretData) {
			t.Errorf("response entries: data %v secretData %q, want %v %q", got.Spec.Data, got.Spec.SecretData, wantData, wantSecretData)
		}
		stored := e.mustGet(t, ns, name)
		if stored.Status.CurrentRevision != wantRevision || !sameEntries(stored.Spec.Data, stored.Spec.SecretData, wantData, wantSecretData) {
			t.Errorf("stored: revision %d data %v secretData %q, want %d %v %q",
				stored.Status.CurrentRevision, stored.Spec.Data, stored.Spec.SecretData, wantRevision, wantData, wantSecretData)
		}
		// Asserted right away: the revision is written before the response.
		after := e.listRevisions(t, ns, name)
		if got := revisionNumbers(after); !slices.Equal(got, append(before, wantRevision)) {
			t.Fatalf("revisions after the write = %v, want %v plus exactly %d", got, before, wantRevision)
		}
		requireRevision(t, &after[len(after)-1], created, revisionWant{
			revision: wantRevision, data: wantData, secretData: wantSecretData, cause: cause, rollbackOf: rollbackOf,
		})
		current = stored
	}

	t.Run("update", func(t *testing.T) {
		step(t, func() (*v1beta1.ConfigSet, error) {
			cur := e.mustGet(t, ns, name)
			cur.Annotations[causeAnnotation] = "hi: update"
			cur.Spec.Data["a"] = "2"
			return client.Update(e.ctx, cur, metav1.UpdateOptions{})
		}, map[string]string{"a": "2"}, map[string][]byte{"s": []byte("x")}, "hi: update", 0)
	})

	t.Run("JSON patch", func(t *testing.T) {
		patch := `[{"op":"replace","path":"/metadata/annotations/config.capstan.dev~1change-cause","value":"hi: json patch"},` +
			`{"op":"add","path":"/spec/data/b","value":"1"}]`
		step(t, func() (*v1beta1.ConfigSet, error) {
			return client.Patch(e.ctx, name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
		}, map[string]string{"a": "2", "b": "1"}, map[string][]byte{"s": []byte("x")}, "hi: json patch", 0)
	})

	t.Run("merge patch", func(t *testing.T) {
		patch := `{"metadata":{"annotations":{"config.capstan.dev/change-cause":"hi: merge patch"}},"spec":{"data":{"a":null,"c":"3"}}}`
		step(t, func() (*v1beta1.ConfigSet, error) {
			return client.Patch(e.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		}, map[string]string{"b": "1", "c": "3"}, map[string][]byte{"s": []byte("x")}, "hi: merge patch", 0)
	})

	t.Run("strategic merge patch", func(t *testing.T) {
		// "eQ==" is base64 for "y".
		patch := `{"metadata":{"annotations":{"config.capstan.dev/change-cause":"hi: strategic merge patch"}},"spec":{"secretData":{"s":"eQ=="}}}`
		probe, err := client.Patch(e.ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		if apierrors.IsUnsupportedMediaType(err) {
			t.Logf("the server answers a strategic merge patch with 415: %v", err)
			e.requireNoChange(t, ns, name, current.Status.CurrentRevision, numberRange(1, current.Status.CurrentRevision))
			return
		}
		if err != nil {
			t.Fatalf("dry-run strategic merge patch: %v, want it accepted or 415", err)
		}
		if probe.Status.CurrentRevision != current.Status.CurrentRevision+1 {
			t.Errorf("dry-run strategic merge patch: currentRevision %d, want %d", probe.Status.CurrentRevision, current.Status.CurrentRevision+1)
		}
		step(t, func() (*v1beta1.ConfigSet, error) {
			return client.Patch(e.ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		}, map[string]string{"b": "1", "c": "3"}, map[string][]byte{"s": []byte("y")}, "hi: strategic merge patch", 0)
	})

	t.Run("server-side apply", func(t *testing.T) {
		// The other managers own the change-cause annotation, so the apply
		// forces; it adds d and leaves the fields others own alone.
		wantData := maps.Clone(current.Spec.Data)
		wantData["d"] = "4"
		step(t, func() (*v1beta1.ConfigSet, error) {
			return client.Apply(e.ctx, configac.ConfigSet(name, ns).
				WithAnnotations(map[string]string{causeAnnotation: "hi: apply"}).
				WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"d": "4"})),
				metav1.ApplyOptions{FieldManager: "hi-applier", Force: true})
		}, wantData, current.Spec.SecretData, "hi: apply", 0)
	})

	t.Run("v1alpha1 update", func(t *testing.T) {
		wantData := maps.Clone(current.Spec.Data)
		wantData["alpha"] = "1"
		step(t, func() (*v1beta1.ConfigSet, error) {
			alpha, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Get(e.ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			alpha.Annotations[causeAnnotation] = "hi: v1alpha1 update"
			alpha.Spec.Entries = append(alpha.Spec.Entries, v1alpha1.ConfigEntry{Key: "alpha", Value: "1"})
			if _, err := e.cs.ConfigV1alpha1().ConfigSets(ns).Update(e.ctx, alpha, metav1.UpdateOptions{}); err != nil {
				return nil, err
			}
			return client.Get(e.ctx, name, metav1.GetOptions{})
		}, wantData, current.Spec.SecretData, "hi: v1alpha1 update", 0)
	})

	t.Run("rollback", func(t *testing.T) {
		// The annotation is not touched by a rollback: the revision records
		// the one the ConfigSet carries at that moment.
		step(t, func() (*v1beta1.ConfigSet, error) {
			return client.Rollback(e.ctx, name, &v1beta1.ConfigSetRollback{Revision: 2}, metav1.CreateOptions{})
		}, map[string]string{"a": "2"}, map[string][]byte{"s": []byte("x")}, "hi: v1alpha1 update", 2)

		// A new cause alone makes no revision; the next rollback records it.
		patch := `{"metadata":{"annotations":{"config.capstan.dev/change-cause":"hi: back to 3"}}}`
		if _, err := client.Patch(e.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatalf("patching the cause: %v", err)
		}
		e.requireNoChange(t, ns, name, current.Status.CurrentRevision, numberRange(1, current.Status.CurrentRevision))
		step(t, func() (*v1beta1.ConfigSet, error) {
			return client.Rollback(e.ctx, name, &v1beta1.ConfigSetRollback{Revision: 3}, metav1.CreateOptions{})
		}, map[string]string{"a": "2", "b": "1"}, map[string][]byte{"s": []byte("x")}, "hi: back to 3", 3)
	})

	t.Run("update that removes the cause", func(t *testing.T) {
		step(t, func() (*v1beta1.ConfigSet, error) {
			cur := e.mustGet(t, ns, name)
			delete(cur.Annotations, causeAnnotation)
			cur.Spec.Data["e"] = "5"
			return client.Update(e.ctx, cur, metav1.UpdateOptions{})
		}, map[string]string{"a": "2", "b": "1", "e": "5"}, map[string][]byte{"s": []byte("x")}, "", 0)
	})

	// From here on nothing may make a revision.
	t.Run("writes that make no revision", func(t *testing.T) {
		base := e.mustGet(t, ns, name)
		rev := base.Status.CurrentRevision
		numbers := revisionNumbers(e.listRevisions(t, ns, name))
		if want := numberRange(1, rev); !slices.Equal(numbers, want) {
			t.Fatalf("history before the no-op writes = %v, want %v", numbers, want)
		}
		dryRun := []string{metav1.DryRunAll}
		changedData := map[string]string{"a": "2", "b": "1", "e": "5", "dry": "run"}

		noops := []struct {
			name string
			// write returns the ConfigSet of the response.
			write func(t *testing.T) (*v1beta1.ConfigSet, error)
			// wantResponseRevision is what the response reports (a dry run
			// reports the revision the change would have made).
			wantResponseRevision int64
		}{
			{"update with the same entries and a new cause", func(t *testing.T) (*v1beta1.ConfigSet, error) {
				cur := e.mustGet(t, ns, name)
				cur.Annotations = map[string]string{causeAnnotation: "hi: nothing changed"}
				return client.Update(e.ctx, cur, metav1.UpdateOptions{})
			}, rev},
			{"update that changes nothing at all", func(t *testing.T) (*v1beta1.ConfigSet, error) {
				return client.Update(e.ctx, e.mustGet(t, ns, name), metav1.UpdateOptions{})
			}, rev},
			{"label-only update", func(t *testing.T) (*v1beta1.ConfigSet, error) {
				cur := e.mustGet(t, ns, name)
				cur.Labels = map[string]string{"hi": "label"}
				return client.Update(e.ctx, cur, metav1.UpdateOptions{})
			}, rev},
			{"label-only merge patch", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Patch(e.ctx, name, types.MergePatchType, []byte(`{"metadata":{"labels":{"hi":"patched"}}}`), metav1.PatchOptions{})
			}, rev},
			{"revisionHistoryLimit change", func(t *testing.T) (*v1beta1.ConfigSet, error) {
				cur := e.mustGet(t, ns, name)
				cur.Spec.RevisionHistoryLimit = ptr.To[int32](50)
				return client.Update(e.ctx, cur, metav1.UpdateOptions{})
			}, rev},
			{"merge patch that sets the entries they already have", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Patch(e.ctx, name, types.MergePatchType, []byte(`{"spec":{"data":{"a":"2"},"secretData":{"s":"eA=="}}}`), metav1.PatchOptions{})
			}, rev},
			{"apply of labels only", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Apply(e.ctx, configac.ConfigSet(name, ns).WithLabels(map[string]string{"applied": "label"}),
					metav1.ApplyOptions{FieldManager: "hi-labeler"})
			}, rev},
			{"status update", func(t *testing.T) (*v1beta1.ConfigSet, error) {
				cur := e.mustGet(t, ns, name)
				cur.Status.Conditions = []metav1.Condition{{
					Type: "Applied", Status: metav1.ConditionTrue, Reason: "Test", Message: "applied", LastTransitionTime: metav1.Now(),
				}}
				cur.Spec.Data = map[string]string{"ignored": "by the status endpoint"}
				return client.UpdateStatus(e.ctx, cur, metav1.UpdateOptions{})
			}, rev},
			{"status merge patch", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Patch(e.ctx, name, types.MergePatchType, []byte(`{"spec":{"data":{"via":"status"}},"status":{"currentRevision":99}}`),
					metav1.PatchOptions{}, "status")
			}, rev},
			{"dry-run update", func(t *testing.T) (*v1beta1.ConfigSet, error) {
				cur := e.mustGet(t, ns, name)
				cur.Spec.Data = changedData
				return client.Update(e.ctx, cur, metav1.UpdateOptions{DryRun: dryRun})
			}, rev + 1},
			{"dry-run JSON patch", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Patch(e.ctx, name, types.JSONPatchType, []byte(`[{"op":"add","path":"/spec/data/dry","value":"run"}]`),
					metav1.PatchOptions{DryRun: dryRun})
			}, rev + 1},
			{"dry-run merge patch", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Patch(e.ctx, name, types.MergePatchType, []byte(`{"spec":{"data":{"dry":"run"}}}`), metav1.PatchOptions{DryRun: dryRun})
			}, rev + 1},
			{"dry-run strategic merge patch", func(t *testing.T) (*v1beta1.ConfigSet, error) {
				got, err := client.Patch(e.ctx, name, types.StrategicMergePatchType, []byte(`{"spec":{"data":{"dry":"run"}}}`), metav1.PatchOptions{DryRun: dryRun})
				if apierrors.IsUnsupportedMediaType(err) {
					t.Skipf("strategic merge patch is not supported: %v", err)
				}
				return got, err
			}, rev + 1},
			{"dry-run apply", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Apply(e.ctx, configac.ConfigSet(name, ns).
					WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"dry": "run"})),
					metav1.ApplyOptions{FieldManager: "hi-dry-applier", DryRun: dryRun})
			}, rev + 1},
			{"dry-run rollback", func(*testing.T) (*v1beta1.ConfigSet, error) {
				return client.Rollback(e.ctx, name, &v1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{DryRun: dryRun})
			}, rev + 1},
		}
		for _, tc := range noops {
			t.Run(tc.name, func(t *testing.T) {
				before := e.mustGet(t, ns, name)
				revsBefore := e.listRevisions(t, ns, name)
				got, err := tc.write(t)
				if err != nil {
					t.Fatalf("write: %v", err)
				}
				if got.Status.CurrentRevision != tc.wantResponseRevision {
					t.Errorf("response currentRevision = %d, want %d", got.Status.CurrentRevision, tc.wantResponseRevision)
				}
				after := e.mustGet(t, ns, name)
				if !sameEntries(after.Spec.Data, after.Spec.SecretData, before.Spec.Data, before.Spec.SecretData) {
					t.Errorf("stored entries changed: %v %q, were %v %q", after.Spec.Data, after.Spec.SecretData, before.Spec.Data, before.Spec.SecretData)
				}
				e.requireNoChange(t, ns, name, rev, numbers)
				// A write that makes no revision touches none: an unchanged
				// PUT costs what it costs in Kubernetes.
				revsAfter := e.listRevisions(t, ns, name)
				for i := range revsBefore {
					if i < len(revsAfter) && revsAfter[i].ResourceVersion != revsBefore[i].ResourceVersion {
						t.Errorf("revision %s was rewritten (resourceVersion %s -> %s)", revsAfter[i].Name, revsBefore[i].ResourceVersion, revsAfter[i].ResourceVersion)
					}
				}
			})
		}
	})

	t.Run("every kept revision is unchanged", func(t *testing.T) {
		// Revisions are immutable snapshots: the later writes did not touch
		// the earlier revisions.
		revs := e.listRevisions(t, ns, name)
		wantCauses := []string{"hi: create", "hi: update", "hi: json patch", "hi: merge patch"}
		for i, cause := range wantCauses {
			if i >= len(revs) {
				break
			}
			if revs[i].ChangeCause != cause {
				t.Errorf("revision %d: changeCause %q, want %q", revs[i].Revision, revs[i].ChangeCause, cause)
			}
		}
		if len(revs) > 0 && !sameEntries(revs[0].Data, revs[0].SecretData, map[string]string{"a": "1"}, map[string][]byte{"s": []byte("x")}) {
			t.Errorf("revision 1 entries changed: %v %q", revs[0].Data, revs[0].SecretData)
		}
		for i, rev := range revs {
			if want := fmt.Sprintf("%s-%d", name, i+1); rev.Name != want {
				t.Errorf("revision %d is named %q, want %q", i+1, rev.Name, want)
			}
		}
	})

}

// TestHistoryDryRunCreate checks that a dry-run create, and a dry-run apply that
// would create, make no ConfigSet and no revision.
func TestHistoryDryRunCreate(t *testing.T) {
	e := sharedEnv(t)
	const ns = "history-dry-run"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	const dryName = "paths-dry"
	got, err := client.Create(e.ctx, configSet(dryName, map[string]string{"a": "1"}, nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	if got.Status.CurrentRevision != 1 {
		t.Errorf("dry-run create: response currentRevision = %d, want 1", got.Status.CurrentRevision)
	}
	if _, err := client.Get(e.ctx, dryName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after dry-run create: err = %v, want NotFound", err)
	}
	if revs := e.listRevisions(t, ns, dryName); len(revs) != 0 {
		t.Errorf("dry-run create wrote revisions %v", revisionNumbers(revs))
	}
	// A dry-run apply that would create is the same.
	if _, err := client.Apply(e.ctx, configac.ConfigSet(dryName, ns).WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"a": "1"})),
		metav1.ApplyOptions{FieldManager: "hi-dry-applier", DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry-run creating apply: %v", err)
	}
	if revs := e.listRevisions(t, ns, dryName); len(revs) != 0 {
		t.Errorf("dry-run creating apply wrote revisions %v", revisionNumbers(revs))
	}
}

// TestHistoryApplyThatCreates checks that a server-side apply that creates a
// ConfigSet makes its revision 1.
func TestHistoryApplyThatCreates(t *testing.T) {
	e := sharedEnv(t)
	const ns = "history-apply-creates"
	client := e.cs.ConfigV1beta1().ConfigSets(ns)
	const applyName = "paths-applied"
	got, err := client.Apply(e.ctx, configac.ConfigSet(applyName, ns).
		WithAnnotations(map[string]string{causeAnnotation: "hi: created by apply"}).
		WithSpec(configac.ConfigSetSpec().WithData(map[string]string{"k": "v"}).WithSecretData(map[string][]byte{"t": []byte("s")})),
		metav1.ApplyOptions{FieldManager: "hi-applier"})
	if err != nil {
		t.Fatalf("creating apply: %v", err)
	}
	if got.Status.CurrentRevision != 1 {
		t.Errorf("creating apply: currentRevision = %d, want 1", got.Status.CurrentRevision)
	}
	revs := e.requireNumbers(t, ns, applyName, []int64{1})
	requireRevision(t, &revs[0], got, revisionWant{
		revision: 1, data: map[string]string{"k": "v"}, secretData: map[string][]byte{"t": []byte("s")}, cause: "hi: created by apply",
	})
}

// TestHistoryLongConfigSetNames checks the revisions of ConfigSets with long names.
//
// Revision names are <configset>-<n>, with a long ConfigSet name cut and
// given a hash of the full name. A ConfigSet whose name is exactly that
// cut-and-hash form is a different ConfigSet: each must get a revision 1
// of its own.
func TestHistoryLongConfigSetNames(t *testing.T) {
	e := sharedEnv(t)
	const ns = "history-long-names"
	long := strings.Repeat("l", 253)
	sum := sha256.Sum256([]byte(long))
	short := long[:240] + "-" + hex.EncodeToString(sum[:])[:10]
	for _, n := range []string{long, short} {
		got := e.mustCreate(t, ns, configSet(n, map[string]string{"len": fmt.Sprint(len(n))}, nil))
		revs := e.listRevisions(t, ns, n)
		if len(revs) != 1 {
			t.Errorf("ConfigSet of %d characters: revisions %v, want exactly [1]", len(n), revisionNumbers(revs))
			continue
		}
		rev := revs[0]
		if rev.ConfigSetName != n || rev.Revision != 1 || rev.Data["len"] != fmt.Sprint(len(n)) ||
			len(rev.OwnerReferences) != 1 || rev.OwnerReferences[0].UID != got.UID || rev.Author != adminUser {
			t.Errorf("ConfigSet of %d characters: revision %s = configSetName %d chars, revision %d, data %v, owner %+v, author %q; want its own revision 1",
				len(n), rev.Name, len(rev.ConfigSetName), rev.Revision, rev.Data, rev.OwnerReferences, rev.Author)
		}
		if len(rev.Name) > 253 {
			t.Errorf("revision name of %d characters", len(rev.Name))
		}
	}
}
