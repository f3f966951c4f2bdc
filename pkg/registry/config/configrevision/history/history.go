// Package history owns the invariant that every stored change of a
// ConfigSet's entries has its ConfigRevision, by its author, within the
// ConfigSet's count and byte limits: it writes, finds and prunes revisions for
// the ConfigSet endpoints and for the history reconciler. The ConfigSet write
// is the truth; docs/history.md describes the protocol.
package history

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/user"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
)

// ReconcilerUser is the author of revisions the reconciler had to restore,
// because the request that made the change is no longer known.
const ReconcilerUser = "system:capstan:history-reconciler"

// Recorder keeps the history of ConfigSets: it is the one entry point the
// ConfigSet endpoints call, for every change and every deletion, and the one
// place that decides what is written, restored and pruned.
type Recorder interface {
	// Begin returns the context a ConfigSet write by change runs on, so that
	// the write can create the change's revision in its own etcd transaction.
	Begin(ctx context.Context, change Change) context.Context
	// Changed is called after a ConfigSet was stored: created (old is nil) or
	// updated from old to cur. When the entries changed it writes cur's
	// revision unless the write's transaction did (see Begin), hands a
	// missing revision of old to the repairer, and prunes;
	// failures become warnings on ctx, never request errors, because the
	// change itself is stored.
	Changed(ctx context.Context, old, cur *config.ConfigSet, change Change)
	// Uncertain is called when a write that started from old ended without
	// an answer from storage (its deadline passed, etcd was unavailable):
	// etcd may still apply it, and then no request is left that knows old.
	// It hands old to the repairer when old's revision is missing.
	Uncertain(old *config.ConfigSet)
	// Deleted removes the revisions of cs, which is gone from storage.
	Deleted(ctx context.Context, cs *config.ConfigSet)
	// Revision returns revision rev of cs, or NotFound when it is not kept.
	Revision(ctx context.Context, cs *config.ConfigSet, rev int64) (*config.ConfigRevision, error)
}

// Repairer restores, after the repair grace period, the revision of a change
// whose own request did not write it. The history reconciler is one.
type Repairer interface {
	RestoreLater(prev *config.ConfigSet)
}

// Disabled is the Recorder of a server that records no history
// (--record-history=false): nothing is written, and no revision is kept.
type Disabled struct{}

var _ Recorder = Disabled{}

// Begin changes nothing: no revision joins the write.
func (Disabled) Begin(ctx context.Context, _ Change) context.Context { return ctx }

// Changed records nothing.
func (Disabled) Changed(context.Context, *config.ConfigSet, *config.ConfigSet, Change) {}

// Uncertain has nothing to repair.
func (Disabled) Uncertain(*config.ConfigSet) {}

// Deleted has nothing to delete.
func (Disabled) Deleted(context.Context, *config.ConfigSet) {}

// Revision finds nothing: no revision is kept.
func (Disabled) Revision(_ context.Context, cs *config.ConfigSet, rev int64) (*config.ConfigRevision, error) {
	return nil, apierrors.NewNotFound(config.Resource("configrevisions"),
		fmt.Sprintf("revision %d of configset %s (this server records no history)", rev, cs.Name))
}

// History writes, reads and prunes ConfigRevisions through the revision store,
// inside the server, bypassing the user-facing endpoint that refuses writes. It
// keeps an index of revision summaries (never their entries), so that deciding
// what to prune or repair reads no revision from etcd.
type History struct {
	store           *genericregistry.Store
	index           *index
	maxBytes        int64
	repairGrace     time.Duration
	repairer        Repairer
	revisionStorage *storagebackend.ConfigForResource
}

var _ Recorder = &History{}

// Options configure a History.
type Options struct {
	// MaxBytes bounds the entries of the revisions one ConfigSet keeps
	// (--history-max-bytes); zero means DefaultMaxBytes.
	MaxBytes int64
	// RepairGrace is how long the request that made a change has to write its
	// revision before the reconciler restores it (--history-repair-grace-period);
	// zero means DefaultRepairGrace.
	RepairGrace time.Duration
	// RevisionStorage is the revision store's storage configuration
	// (RevisionStorageFrom); with it a ConfigSet write creates its revision in
	// the same etcd transaction (Begin), without it revisions are written
	// after their change, in a transaction of their own.
	RevisionStorage *storagebackend.ConfigForResource
}

// DefaultRepairGrace is how long the request that made a change has to write
// its revision before the reconciler restores it.
const DefaultRepairGrace = 5 * time.Second

// DefaultMaxBytes is the default byte budget of one ConfigSet's history: what
// the default count limit (10) holds when every revision has the largest
// entries allowed (1 MiB), so that only ConfigSets that raise the limit are
// ever pruned by bytes.
const DefaultMaxBytes = 10 << 20

// writeTimeout bounds a ConfigSet write and the history writes that follow it
// when the request has no deadline of its own.
const writeTimeout = 30 * time.Second

// Uncancelled returns the context a ConfigSet write and its history writes run
// on: it keeps ctx's values (the user, the namespace, the warning recorder) and
// its deadline, but not its cancellation. A client that disconnects while etcd
// applies its change does not make the request give up and leave the change
// without its revision; the deadline stays, so that storage gives up (and the
// handler answers 504) before the server's timeout filter fires, which would
// otherwise reset the stream of a handler already answering.
func Uncancelled(ctx context.Context) (context.Context, context.CancelFunc) {
	if deadline, ok := ctx.Deadline(); ok {
		return context.WithDeadline(context.WithoutCancel(ctx), deadline)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// New returns a History over the full ConfigRevision store. Run starts its index.
func New(store *genericregistry.Store, opts Options) *History {
	registerMetrics()
	h := &History{store: store, index: newIndex(store), maxBytes: opts.MaxBytes, repairGrace: opts.RepairGrace, repairer: unrepaired{}, revisionStorage: opts.RevisionStorage}
	if h.maxBytes <= 0 {
		h.maxBytes = DefaultMaxBytes
	}
	if h.repairGrace <= 0 {
		h.repairGrace = DefaultRepairGrace
	}
	return h
}

// Run fills and follows the index of revisions until ctx ends.
func (h *History) Run(ctx context.Context) { h.index.informer.RunWithContext(ctx) }

// HasSynced reports whether the index holds every revision in etcd.
func (h *History) HasSynced() bool { return h.index.informer.HasSynced() }

// AddEventHandler registers a handler of revision summaries, for the reconciler.
func (h *History) AddEventHandler(handler cache.ResourceEventHandler) error {
	_, err := h.index.informer.AddEventHandler(handler)
	return err
}

// SetRepairer names who restores the revisions of changes whose requests did
// not write them. Call it before the server serves.
func (h *History) SetRepairer(r Repairer) { h.repairer = r }

// RepairGrace is how long a missing revision is left to the request that made the change.
func (h *History) RepairGrace() time.Duration { return h.repairGrace }

// unrepaired is the Repairer until the reconciler registers: it can only say
// that a revision may stay missing.
type unrepaired struct{}

func (unrepaired) RestoreLater(prev *config.ConfigSet) {
	klog.Background().Info("A revision may be missing and no history reconciler runs to restore it",
		"configset", prev.Namespace+"/"+prev.Name, "revision", prev.Status.CurrentRevision)
}

// Change describes who made a ConfigSet change and how.
type Change struct {
	// Author is the user name of the request.
	Author string
	// RollbackOf is the revision a rollback restored, or 0.
	RollbackOf int64
}

// Snapshot returns the revision that records cs as it is now.
func Snapshot(cs *config.ConfigSet, change Change) *config.ConfigRevision {
	return &config.ConfigRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:      config.RevisionName(cs.Name, cs.Status.CurrentRevision),
			Namespace: cs.Namespace,
			Labels:    map[string]string{config.ConfigSetLabel: config.ConfigSetLabelValue(cs.Name)},
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

// Changed writes the revision of a stored change and prunes; see Recorder.
func (h *History) Changed(ctx context.Context, old, cur *config.ConfigSet, change Change) {
	ctx, cancel := Uncancelled(ctx)
	defer cancel()
	ctx = genericapirequest.WithNamespace(ctx, cur.Namespace)
	if old != nil && old.UID == cur.UID && old.Status.CurrentRevision == cur.Status.CurrentRevision {
		// The entries did not change: no revision. A lowered limit prunes now.
		if cur.Spec.RevisionHistoryLimit < old.Spec.RevisionHistoryLimit {
			h.pruneAndWarn(ctx, cur, nil, h.index.forConfigSet(cur.Namespace, cur.Name))
		}
		return
	}
	sums := h.index.forConfigSet(cur.Namespace, cur.Name)
	if old != nil && old.UID == cur.UID {
		h.ensureRecorded(old, sums)
	}
	written := writtenWith(ctx, cur)
	var err error
	if written == nil {
		written, _, err = h.create(ctx, cur, Snapshot(cur, change))
	}
	recordWrite(writerRequest, err)
	if err != nil {
		warning.AddWarning(ctx, "", fmt.Sprintf("revision %d of configset %s was stored but its history was not written (%v); the server will restore it",
			cur.Status.CurrentRevision, cur.Name, err))
		return
	}
	h.pruneAndWarn(ctx, cur, written, sums)
}

// Uncertain hands old to the repairer when its revision is missing; see Recorder.
func (h *History) Uncertain(old *config.ConfigSet) {
	h.ensureRecorded(old, h.index.forConfigSet(old.Namespace, old.Name))
}

// ensureRecorded hands the change prev to the repairer when its revision is
// not among sums, the index's summaries of its ConfigSet: the request that
// made it normally wrote it before answering, but if that request ended first
// (its server died, or etcd applied the change after the request gave up),
// this request is the last to know what the ConfigSet held at that revision.
func (h *History) ensureRecorded(prev *config.ConfigSet, sums []*Summary) {
	rev := prev.Status.CurrentRevision
	if rev < 1 || holds(sums, prev.UID, rev) {
		return
	}
	h.repairer.RestoreLater(prev.DeepCopy())
}

// holds reports whether sums include revision rev of the ConfigSet with this UID.
func holds(sums []*Summary, uid types.UID, rev int64) bool {
	for _, s := range sums {
		if s.Revision == rev && s.OwnerUID == uid {
			return true
		}
	}
	return false
}

func (h *History) pruneAndWarn(ctx context.Context, cs *config.ConfigSet, written *config.ConfigRevision, sums []*Summary) {
	byBytes, err := h.prune(ctx, cs, written, sums)
	if err != nil {
		warning.AddWarning(ctx, "", fmt.Sprintf("history of configset %s was not pruned (%v); the server will prune it", cs.Name, err))
	}
	if byBytes > 0 {
		warning.AddWarning(ctx, "", fmt.Sprintf("%d older revision(s) of configset %s were pruned to keep its history within %d bytes (the server's --history-max-bytes)",
			byBytes, cs.Name, h.maxBytes))
	}
}

// Restore writes the revision of prev, a state of a ConfigSet whose request
// did not write it, with the reconciler as author and without pruning. It
// returns whether it wrote it: someone else may have, meanwhile.
func (h *History) Restore(ctx context.Context, prev *config.ConfigSet) (bool, error) {
	ctx = genericapirequest.WithNamespace(ctx, prev.Namespace)
	_, created, err := h.create(ctx, prev, Snapshot(prev, Change{Author: ReconcilerUser}))
	recordWrite(writerReconciler, err)
	if err != nil {
		return false, fmt.Errorf("restoring revision %d of configset %s/%s: %w", prev.Status.CurrentRevision, prev.Namespace, prev.Name, err)
	}
	return created, nil
}

// Repair writes the current revision of cs, read from storage, when etcd does
// not hold it, and prunes. It returns whether it restored the revision.
func (h *History) Repair(ctx context.Context, cs *config.ConfigSet) (bool, error) {
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	_, err := h.Revision(ctx, cs, cs.Status.CurrentRevision)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	var written *config.ConfigRevision
	created := false
	if err != nil {
		written, created, err = h.create(ctx, cs, Snapshot(cs, Change{Author: ReconcilerUser}))
		recordWrite(writerReconciler, err)
		if err != nil {
			return false, fmt.Errorf("restoring revision %d of configset %s/%s: %w", cs.Status.CurrentRevision, cs.Namespace, cs.Name, err)
		}
	}
	_, err = h.prune(ctx, cs, written, h.index.forConfigSet(cs.Namespace, cs.Name))
	return created, err
}

// Subject is what deciding about a ConfigSet's history needs to know of it.
type Subject struct {
	Namespace, Name string
	UID             types.UID
	CurrentRevision int64
	Limit           int32
}

// SubjectOf returns the subject of cs.
func SubjectOf(cs *config.ConfigSet) Subject {
	return Subject{Namespace: cs.Namespace, Name: cs.Name, UID: cs.UID, CurrentRevision: cs.Status.CurrentRevision, Limit: cs.Spec.RevisionHistoryLimit}
}

// Check reports, from the index alone, whether the history of cs holds its
// current revision and whether it holds revisions to prune.
func (h *History) Check(cs Subject) (hasCurrent, prunable bool) {
	sums := h.index.forConfigSet(cs.Namespace, cs.Name)
	drop, _ := h.plan(cs, sums)
	return holds(sums, cs.UID, cs.CurrentRevision), len(drop) > 0
}

// plan returns the revisions to delete among sums (newest first), each with
// its reason (pruneOrphaned, pruneCount or pruneBytes): revisions of another
// ConfigSet of this name, those older than the count limit allows, and the
// oldest beyond the byte budget. The current revision always stays, and so does any revision
// newer than the caller knows of.
func (h *History) plan(cs Subject, sums []*Summary) (drop []*Summary, reasons []string) {
	limit := int64(max(cs.Limit, 1))
	oldestKept := cs.CurrentRevision - limit + 1
	var kept int64
	over := false
	for _, s := range sums {
		switch {
		case s.OwnerUID != cs.UID:
			drop, reasons = append(drop, s), append(reasons, pruneOrphaned)
		case s.Revision > cs.CurrentRevision:
		case s.Revision == cs.CurrentRevision:
			kept += s.Bytes
		case s.Revision < oldestKept:
			drop, reasons = append(drop, s), append(reasons, pruneCount)
		case over || kept+s.Bytes > h.maxBytes:
			over = true
			drop, reasons = append(drop, s), append(reasons, pruneBytes)
		default:
			kept += s.Bytes
		}
	}
	return drop, reasons
}

// prune deletes what plan says for cs, given sums, the index's summaries of
// its ConfigSet. written is the revision just written, which the index may not
// hold yet. It returns how many revisions went for the byte budget.
func (h *History) prune(ctx context.Context, cs *config.ConfigSet, written *config.ConfigRevision, sums []*Summary) (int, error) {
	if written != nil {
		found := false
		for _, s := range sums {
			found = found || s.Name == written.Name
		}
		if !found {
			sums = append([]*Summary{Summarize(written)}, sums...)
			sort.SliceStable(sums, func(a, b int) bool { return sums[a].Revision > sums[b].Revision })
		}
	}
	drop, reasons := h.plan(SubjectOf(cs), sums)
	byBytes := 0
	for i, s := range drop {
		deleted, err := h.Delete(ctx, s.Namespace, s.Name, s.UID)
		if err != nil {
			return byBytes, err
		}
		// Another writer (a replica, the reconciler) may have pruned it
		// first: only the deletion that happened counts.
		if deleted {
			revisionsPruned.WithLabelValues(reasons[i]).Inc()
			if reasons[i] == pruneBytes {
				byBytes++
			}
		}
	}
	return byBytes, nil
}

// Prune deletes the revisions of cs, read from storage, beyond its count limit
// or the byte budget, and those of an earlier ConfigSet of its name.
func (h *History) Prune(ctx context.Context, cs *config.ConfigSet) error {
	_, err := h.prune(genericapirequest.WithNamespace(ctx, cs.Namespace), cs, nil, h.index.forConfigSet(cs.Namespace, cs.Name))
	return err
}

// create writes rev and returns what is stored, and whether this call wrote
// it. Writing the same revision twice (a retry, or the request and the
// reconciler) is a no-op. A revision
// left under the same name by an earlier ConfigSet of that name is replaced; a
// name taken by another live ConfigSet (possible only for names cut to fit)
// makes the server pick a generated name, since Get finds revisions by their
// fields through the index.
func (h *History) create(ctx context.Context, cs *config.ConfigSet, rev *config.ConfigRevision) (*config.ConfigRevision, bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		out, err := h.store.Create(ctx, rev.DeepCopy(), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		if err == nil {
			return out.(*config.ConfigRevision), true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, false, err
		}
		obj, getErr := h.store.Get(ctx, rev.Name, &metav1.GetOptions{})
		if apierrors.IsNotFound(getErr) {
			continue // deleted meanwhile: try again
		}
		if getErr != nil {
			return nil, false, getErr
		}
		existing := obj.(*config.ConfigRevision)
		switch {
		case existing.ConfigSetName == cs.Name && existing.Revision == rev.Revision && OwnedBy(existing, cs.UID):
			return existing, false, nil
		case existing.ConfigSetName == cs.Name && !OwnedBy(existing, cs.UID):
			// Left by an earlier ConfigSet of this name, whose history is void.
			deleted, err := h.Delete(ctx, existing.Namespace, existing.Name, existing.UID)
			if err != nil {
				return nil, false, err
			}
			if deleted {
				revisionsPruned.WithLabelValues(pruneOrphaned).Inc()
			}
		default:
			found, err := h.find(ctx, cs, rev.Revision)
			if err != nil || found != nil {
				return found, false, err
			}
			rev.GenerateName = rev.Name[:min(len(rev.Name), 240)] + "-"
			rev.Name = ""
		}
	}
	return nil, false, fmt.Errorf("revision name %s stayed taken", rev.Name)
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

// Revision returns revision number rev of cs from etcd, or NotFound when it is not kept.
func (h *History) Revision(ctx context.Context, cs *config.ConfigSet, rev int64) (*config.ConfigRevision, error) {
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	obj, err := h.store.Get(ctx, config.RevisionName(cs.Name, rev), &metav1.GetOptions{})
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

// find looks revision rev of cs up in the index, under any name, and reads it.
func (h *History) find(ctx context.Context, cs *config.ConfigSet, rev int64) (*config.ConfigRevision, error) {
	for _, s := range h.index.forConfigSet(cs.Namespace, cs.Name) {
		if s.Revision != rev || s.OwnerUID != cs.UID || s.Name == config.RevisionName(cs.Name, rev) {
			continue
		}
		obj, err := h.store.Get(genericapirequest.WithNamespace(ctx, cs.Namespace), s.Name, &metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return obj.(*config.ConfigRevision), nil
	}
	return nil, nil
}

// errNotOwned stops the deletion of a revision that another ConfigSet of the
// same name owns.
var errNotOwned = errors.New("the revision belongs to another configset")

// Deleted removes the revisions of cs, which is gone from storage. It deletes
// by name from the current revision down, which finds the newest revisions
// even before the index holds them, and then whatever the index holds for cs.
// Every delete is conditional on the revision belonging to cs, so a new
// ConfigSet of the same name keeps its own.
func (h *History) Deleted(ctx context.Context, cs *config.ConfigSet) {
	ctx, cancel := Uncancelled(ctx)
	defer cancel()
	ctx = genericapirequest.WithNamespace(ctx, cs.Namespace)
	owned := func(_ context.Context, obj runtime.Object) error {
		if rev, ok := obj.(*config.ConfigRevision); !ok || !OwnedBy(rev, cs.UID) {
			return errNotOwned
		}
		return nil
	}
	var failed error
	walked := map[string]bool{}
	for rev := cs.Status.CurrentRevision; rev >= 1 && rev > cs.Status.CurrentRevision-int64(config.MaxRevisionHistoryLimit); rev-- {
		name := config.RevisionName(cs.Name, rev)
		_, _, err := h.store.Delete(ctx, name, owned, &metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) || errors.Is(err, errNotOwned) {
			break
		}
		if err != nil && !apierrors.IsConflict(err) {
			failed = err
			break
		}
		walked[name] = true
	}
	for _, s := range h.index.forConfigSet(cs.Namespace, cs.Name) {
		if s.OwnerUID != cs.UID || walked[s.Name] {
			continue
		}
		if _, err := h.Delete(ctx, s.Namespace, s.Name, s.UID); err != nil {
			failed = err
		}
	}
	if failed != nil {
		warning.AddWarning(ctx, "", fmt.Sprintf("the revisions of configset %s were not all deleted (%v); the server will remove them", cs.Name, failed))
	}
}

// Summaries returns the index's summaries of the revisions named for the
// ConfigSet namespace/name, whichever ConfigSet of that name they belong to,
// newest first.
func (h *History) Summaries(namespace, name string) []*Summary {
	return h.index.forConfigSet(namespace, name)
}

// CountIn returns how many revisions the index holds in namespace, for the
// ResourceQuota usage of count/configrevisions.
func (h *History) CountIn(namespace string) int { return h.index.inNamespace(namespace) }

// Delete removes one revision if it still has this UID, tolerating one that
// another writer removed or replaced first.
func (h *History) Delete(ctx context.Context, namespace, name string, uid types.UID) (deleted bool, err error) {
	ctx = genericapirequest.WithNamespace(ctx, namespace)
	_, _, err = h.store.Delete(ctx, name, rest.ValidateAllObjectFunc, &metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid},
	})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		return false, nil
	default:
		return false, fmt.Errorf("deleting revision %s/%s: %w", namespace, name, err)
	}
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

// Indexed reports whether the index holds the current revision of cs.
func (h *History) Indexed(cs Subject) bool {
	return holds(h.index.forConfigSet(cs.Namespace, cs.Name), cs.UID, cs.CurrentRevision)
}
