// Package history writes, finds and prunes the ConfigRevisions of ConfigSets.
// The ConfigSet write is the truth: history follows it, in the request that
// made the change and, after a crash, in the reconciler.
package history

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
)

// ReconcilerUser is the author of revisions the reconciler had to restore,
// because the request that made the change is no longer known.
const ReconcilerUser = "system:capstan:history-reconciler"

// History writes and reads ConfigRevisions through the revision store, inside
// the server, bypassing the user-facing endpoint that refuses writes.
type History struct {
	store       *genericregistry.Store
	repairGrace time.Duration
}

// DefaultRepairGrace is how long the request that made a change has to write
// its revision before another writer restores it.
const DefaultRepairGrace = 5 * time.Second

// New returns a History over the full ConfigRevision store.
func New(store *genericregistry.Store) *History {
	return &History{store: store, repairGrace: DefaultRepairGrace}
}

// SetRepairGrace sets how long a missing revision is left to the request that
// made the change (--history-repair-grace-period).
func (h *History) SetRepairGrace(d time.Duration) {
	if d > 0 {
		h.repairGrace = d
	}
}

// RepairGrace is how long a missing revision is left to the request that made the change.
func (h *History) RepairGrace() time.Duration { return h.repairGrace }

// Change describes who made a ConfigSet change and how.
type Change struct {
	// Author is the user name of the request.
	Author string
	// RollbackOf is the revision a rollback restored, or 0.
	RollbackOf int64
}

// Name returns the name of revision rev of the ConfigSet named configSet.
// It is deterministic so that writers in several replicas, and the reconciler,
// agree on it and a second write of the same revision is an AlreadyExists.
func Name(configSet string, rev int64) string {
	suffix := "-" + strconv.FormatInt(rev, 10)
	if len(configSet)+len(suffix) <= validation.DNS1123SubdomainMaxLength {
		return configSet + suffix
	}
	// Keep the name unique for long ConfigSet names: truncate and add a hash of the full name.
	sum := sha256.Sum256([]byte(configSet))
	hash := "-" + hex.EncodeToString(sum[:])[:10]
	keep := validation.DNS1123SubdomainMaxLength - len(suffix) - len(hash)
	return configSet[:keep] + hash + suffix
}

// LabelValue returns the value of the config.capstan.dev/configset label for a
// ConfigSet name: the name itself when it is a valid label value, otherwise a
// truncated name with a hash, since label values are limited to 63 characters.
func LabelValue(configSet string) string {
	if len(validation.IsValidLabelValue(configSet)) == 0 {
		return configSet
	}
	sum := sha256.Sum256([]byte(configSet))
	hash := hex.EncodeToString(sum[:])[:10]
	keep := validation.LabelValueMaxLength - len(hash) - 1
	prefix := configSet[:keep]
	// A label value must end with an alphanumeric character.
	for len(prefix) > 0 && !isAlphanumeric(prefix[len(prefix)-1]) {
		prefix = prefix[:len(prefix)-1]
	}
	return prefix + "-" + hash
}

func isAlphanumeric(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

// Snapshot returns the revision that records cs as it is now.
func Snapshot(cs *config.ConfigSet, change Change) *config.ConfigRevision {
	return &config.ConfigRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name(cs.Name, cs.Status.CurrentRevision),
			Namespace: cs.Namespace,
			Labels:    map[string]string{config.ConfigSetLabel: LabelValue(cs.Name)},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "config.capstan.dev/v1beta1",
				Kind:               "ConfigSet",
				Name:               cs.Name,
				UID:                cs.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		ConfigSetName: cs.Name,
		Revision:      cs.Status.CurrentRevision,
		Data:          copyData(cs.Spec.Data),
		SecretData:    copySecretData(cs.Spec.SecretData),
		Author:        change.Author,
		ChangeCause:   cs.Annotations[config.ChangeCauseAnnotation],
		RollbackOf:    change.RollbackOf,
	}
}

// Record writes the revision for cs's current state and prunes what is beyond
// its history limit. Writing the same revision twice (a retry, or the request
// and the reconciler) is a no-op. A revision left under the same name by an
// earlier ConfigSet of that name is replaced; a name taken by another live
// ConfigSet (possible only for names cut to fit) makes the server pick a
// generated name, since Get and List find revisions by their fields.
func (h *History) Record(ctx context.Context, cs *config.ConfigSet, change Change) error {
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	if err := h.create(ctx, cs, Snapshot(cs, change)); err != nil {
		return fmt.Errorf("writing revision %d of configset %s/%s: %w", cs.Status.CurrentRevision, cs.Namespace, cs.Name, err)
	}
	return h.pruneTail(ctx, cs)
}

// Restore writes the revision for cs's state as it was, without pruning: the
// revision of a change whose own request did not write it.
func (h *History) Restore(ctx context.Context, cs *config.ConfigSet, change Change) error {
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	if err := h.create(ctx, cs, Snapshot(cs, change)); err != nil {
		return fmt.Errorf("restoring revision %d of configset %s/%s: %w", cs.Status.CurrentRevision, cs.Namespace, cs.Name, err)
	}
	return nil
}

// Cached reports whether revision rev of cs is in the revisions' watch cache
// under its usual name: a read that does not reach etcd, which may lag
// behind it by a moment.
func (h *History) Cached(ctx context.Context, cs *config.ConfigSet, rev int64) bool {
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	obj, err := h.store.Get(ctx, Name(cs.Name, rev), &metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return false
	}
	r := obj.(*config.ConfigRevision)
	return r.ConfigSetName == cs.Name && r.Revision == rev && OwnedBy(r, cs.UID)
}

// pruneTail deletes the one revision that the new one pushes out of the
// history window, by its name: a write costs one delete, not a list of the
// ConfigSet's revisions. Whatever else is over the limit (after a crash, or a
// lowered limit) is Prune's, which the update path and the reconciler call.
func (h *History) pruneTail(ctx context.Context, cs *config.ConfigSet) error {
	limit := int64(max(cs.Spec.RevisionHistoryLimit, 1))
	out := cs.Status.CurrentRevision - limit
	if out < 1 {
		return nil
	}
	_, _, err := h.store.Delete(genericapirequest.WithNamespace(ctx, cs.Namespace), Name(cs.Name, out), rest.ValidateAllObjectFunc, &metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("pruning revision %d of configset %s/%s: %w", out, cs.Namespace, cs.Name, err)
	}
	return nil
}

func (h *History) create(ctx context.Context, cs *config.ConfigSet, rev *config.ConfigRevision) error {
	for attempt := 0; attempt < 3; attempt++ {
		_, err := h.store.Create(ctx, rev.DeepCopy(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		obj, getErr := h.store.Get(ctx, rev.Name, &metav1.GetOptions{})
		if apierrors.IsNotFound(getErr) {
			continue // deleted meanwhile: try again
		}
		if getErr != nil {
			return getErr
		}
		existing := obj.(*config.ConfigRevision)
		switch {
		case existing.ConfigSetName == cs.Name && existing.Revision == rev.Revision && OwnedBy(existing, cs.UID):
			return nil
		case existing.ConfigSetName == cs.Name && !OwnedBy(existing, cs.UID):
			// Left by an earlier ConfigSet of this name, whose history is void.
			if err := h.Delete(ctx, existing.Namespace, existing.Name, existing.UID); err != nil {
				return err
			}
		default:
			found, err := h.find(ctx, cs, rev.Revision)
			if err != nil || found != nil {
				return err
			}
			rev.GenerateName = rev.Name[:min(len(rev.Name), 240)] + "-"
			rev.Name = ""
		}
	}
	return fmt.Errorf("revision name %s stayed taken", rev.Name)
}

// List returns the kept revisions of cs that belong to it (same UID), oldest first.
func (h *History) List(ctx context.Context, namespace, name string, uid types.UID) ([]*config.ConfigRevision, error) {
	ctx = genericapirequest.WithNamespace(ctx, namespace)
	obj, err := h.store.List(ctx, &metainternalversion.ListOptions{
		FieldSelector: fields.OneTermEqualSelector(config.ConfigRevisionConfigSetNameField, name),
	})
	if err != nil {
		return nil, err
	}
	var out []*config.ConfigRevision
	for i := range obj.(*config.ConfigRevisionList).Items {
		rev := &obj.(*config.ConfigRevisionList).Items[i]
		if uid != "" && !OwnedBy(rev, uid) {
			continue
		}
		out = append(out, rev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out, nil
}

// OwnedBy reports whether rev belongs to the ConfigSet with this UID; a
// revision left from an earlier ConfigSet of the same name does not.
func OwnedBy(rev *config.ConfigRevision, uid types.UID) bool {
	for _, ref := range rev.OwnerReferences {
		if ref.Kind == "ConfigSet" && ref.UID == uid {
			return true
		}
	}
	return false
}

// Get returns revision number rev of cs, or NotFound when it is not kept.
func (h *History) Get(ctx context.Context, cs *config.ConfigSet, rev int64) (*config.ConfigRevision, error) {
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	obj, err := h.store.Get(ctx, Name(cs.Name, rev), &metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err == nil {
		if r := obj.(*config.ConfigRevision); r.ConfigSetName == cs.Name && r.Revision == rev && OwnedBy(r, cs.UID) {
			return r, nil
		}
	}
	// Not under its usual name: a cut name taken by another ConfigSet made the
	// server generate one.
	r, err := h.find(ctx, cs, rev)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, apierrors.NewNotFound(config.Resource("configrevisions"), fmt.Sprintf("revision %d of configset %s", rev, cs.Name))
	}
	return r, nil
}

// find looks revision rev of cs up by its fields.
func (h *History) find(ctx context.Context, cs *config.ConfigSet, rev int64) (*config.ConfigRevision, error) {
	revs, err := h.List(ctx, cs.Namespace, cs.Name, cs.UID)
	if err != nil {
		return nil, err
	}
	for _, r := range revs {
		if r.Revision == rev {
			return r, nil
		}
	}
	return nil, nil
}

// Prune deletes the revisions of cs that are older than its history limit
// allows; the current revision is always kept.
func (h *History) Prune(ctx context.Context, cs *config.ConfigSet) error {
	limit := int64(cs.Spec.RevisionHistoryLimit)
	if limit < 1 {
		limit = 1
	}
	oldestKept := cs.Status.CurrentRevision - limit + 1
	revs, err := h.List(ctx, cs.Namespace, cs.Name, "")
	if err != nil {
		return err
	}
	for _, rev := range revs {
		// Revisions of an earlier ConfigSet with the same name go too.
		if rev.Revision >= oldestKept && OwnedBy(rev, cs.UID) {
			continue
		}
		if err := h.delete(ctx, rev); err != nil {
			return err
		}
	}
	return nil
}

// Rewrite writes every revision of cs back unchanged. Storage rewrites a value
// only when it is stale, that is encrypted with a key that is no longer the
// write key, so this is how revisions follow an encryption key rotation:
// users cannot update revisions, but they rewrite ConfigSets.
func (h *History) Rewrite(ctx context.Context, cs *config.ConfigSet) error {
	revs, err := h.List(ctx, cs.Namespace, cs.Name, cs.UID)
	if err != nil {
		return err
	}
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	for _, rev := range revs {
		_, _, err := h.store.Update(ctx, rev.Name, rest.DefaultUpdatedObjectInfo(rev), nil, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("rewriting revision %s/%s: %w", rev.Namespace, rev.Name, err)
		}
	}
	return nil
}

// DeleteAll deletes every revision of the ConfigSet namespace/name; with a
// UID, only the revisions of that ConfigSet.
func (h *History) DeleteAll(ctx context.Context, namespace, name string, uid types.UID) error {
	revs, err := h.List(ctx, namespace, name, uid)
	if err != nil {
		return err
	}
	for _, rev := range revs {
		if err := h.delete(ctx, rev); err != nil {
			return err
		}
	}
	return nil
}

func (h *History) delete(ctx context.Context, rev *config.ConfigRevision) error {
	return h.Delete(ctx, rev.Namespace, rev.Name, rev.UID)
}

// Delete removes one revision if it still has this UID, tolerating one that
// another writer removed or replaced first.
func (h *History) Delete(ctx context.Context, namespace, name string, uid types.UID) error {
	ctx = genericapirequest.WithNamespace(ctx, namespace)
	_, _, err := h.store.Delete(ctx, name, rest.ValidateAllObjectFunc, &metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting revision %s/%s: %w", namespace, name, err)
	}
	return nil
}

// AuthorFrom returns the user name of the request in ctx.
func AuthorFrom(ctx context.Context) string {
	if u, ok := genericapirequest.UserFrom(ctx); ok && u != nil {
		return u.GetName()
	}
	return user.Anonymous
}

func copyData(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func copySecretData(in map[string][]byte) map[string][]byte {
	if in == nil {
		return nil
	}
	out := make(map[string][]byte, len(in))
	for k, v := range in {
		out[k] = append([]byte(nil), v...)
	}
	return out
}
