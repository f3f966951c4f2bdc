package history

import (
	"context"
	"fmt"
	"sort"

	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/client-go/tools/cache"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/validation"
)

// Summary is what the server keeps in memory of one ConfigRevision: who it
// belongs to, its number and how many bytes its entries take, never the
// entries. It is the compact form that keeps a replica's memory independent of
// the size of history.
type Summary struct {
	metav1.TypeMeta
	// ObjectMeta holds the revision's name, namespace, UID and resourceVersion only.
	metav1.ObjectMeta
	ConfigSetName string
	Revision      int64
	// OwnerUID is the UID of the ConfigSet the revision belongs to.
	OwnerUID types.UID
	// Bytes is the size of the revision's entries, as the history byte budget counts it.
	Bytes int64
}

// DeepCopyObject copies the summary.
func (s *Summary) DeepCopyObject() runtime.Object {
	c := *s
	s.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}

// SummaryList is a page of summaries, as the index's reflector lists them.
type SummaryList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []Summary
}

// DeepCopyObject copies the list.
func (l *SummaryList) DeepCopyObject() runtime.Object {
	c := &SummaryList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&c.ListMeta)
	for i := range l.Items {
		c.Items = append(c.Items, *l.Items[i].DeepCopyObject().(*Summary))
	}
	return c
}

// Summarize returns the summary of rev.
func Summarize(rev *config.ConfigRevision) *Summary {
	s := &Summary{
		ObjectMeta: metav1.ObjectMeta{
			Name:            rev.Name,
			Namespace:       rev.Namespace,
			UID:             rev.UID,
			ResourceVersion: rev.ResourceVersion,
		},
		ConfigSetName: rev.ConfigSetName,
		Revision:      rev.Revision,
		Bytes:         validation.EntriesSize(rev.Data, rev.SecretData),
	}
	for _, ref := range rev.OwnerReferences {
		if ref.Kind == "ConfigSet" {
			s.OwnerUID = ref.UID
		}
	}
	return s
}

// byConfigSet indexes summaries by namespace/configSetName.
const byConfigSet = "configSet"

// indexPageSize bounds how many whole revisions one list page decodes while the
// index fills: revisions can be 1 MiB each, and they are only summarized once
// the page is read.
const indexPageSize = 16

// index follows every ConfigRevision in etcd as a Summary. It reads the
// revision store in-process, page by page, and turns each page and each watch
// event into summaries before anything keeps them.
type index struct {
	informer cache.SharedIndexInformer
}

func newIndex(store *genericregistry.Store) *index {
	informer := cache.NewSharedIndexInformerWithOptions(summaryListWatch{store: store}, &Summary{},
		cache.SharedIndexInformerOptions{Indexers: cache.Indexers{
			byConfigSet: func(obj interface{}) ([]string, error) {
				s, ok := obj.(*Summary)
				if !ok {
					return nil, nil
				}
				return []string{s.Namespace + "/" + s.ConfigSetName}, nil
			},
			cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
		}})
	return &index{informer: informer}
}

// forConfigSet returns the summaries of the revisions named for the ConfigSet
// namespace/name, whichever ConfigSet of that name they belong to, newest first.
func (i *index) forConfigSet(namespace, name string) []*Summary {
	objs, err := i.informer.GetIndexer().ByIndex(byConfigSet, namespace+"/"+name)
	if err != nil {
		return nil
	}
	out := make([]*Summary, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*Summary))
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Revision > out[b].Revision })
	return out
}

// inNamespace returns how many revisions namespace holds.
func (i *index) inNamespace(namespace string) int {
	keys, err := i.informer.GetIndexer().IndexKeys(cache.NamespaceIndex, namespace)
	if err != nil {
		return 0
	}
	return len(keys)
}

// summaryListWatch lists and watches the revision store and hands on summaries.
type summaryListWatch struct {
	store *genericregistry.Store
}

// IsWatchListSemanticsUnSupported keeps the reflector on list and watch: the
// store is read in pages that are summarized one by one.
func (summaryListWatch) IsWatchListSemanticsUnSupported() bool { return true }

func (lw summaryListWatch) ListWithContext(ctx context.Context, options metav1.ListOptions) (runtime.Object, error) {
	limit := options.Limit
	if limit <= 0 || limit > indexPageSize {
		limit = indexPageSize
	}
	opts := &metainternalversion.ListOptions{
		ResourceVersion:      options.ResourceVersion,
		ResourceVersionMatch: options.ResourceVersionMatch,
		Limit:                limit,
		Continue:             options.Continue,
	}
	if opts.Continue != "" {
		opts.ResourceVersion, opts.ResourceVersionMatch = "", ""
	}
	obj, err := lw.store.List(genericapirequest.WithNamespace(ctx, metav1.NamespaceAll), opts)
	if err != nil {
		return nil, err
	}
	list, ok := obj.(*config.ConfigRevisionList)
	if !ok {
		return nil, fmt.Errorf("listing configrevisions returned %T", obj)
	}
	out := &SummaryList{ListMeta: list.ListMeta, Items: make([]Summary, 0, len(list.Items))}
	for i := range list.Items {
		out.Items = append(out.Items, *Summarize(&list.Items[i]))
	}
	return out, nil
}

func (lw summaryListWatch) WatchWithContext(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
	w, err := lw.store.Watch(genericapirequest.WithNamespace(ctx, metav1.NamespaceAll), &metainternalversion.ListOptions{
		ResourceVersion:     options.ResourceVersion,
		AllowWatchBookmarks: options.AllowWatchBookmarks,
		TimeoutSeconds:      options.TimeoutSeconds,
		Watch:               true,
	})
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		if rev, ok := e.Object.(*config.ConfigRevision); ok {
			e.Object = Summarize(rev)
		}
		return e, true
	}), nil
}

// List is ListWithContext for the reflector's older interface.
func (lw summaryListWatch) List(options metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), options)
}

// Watch is WatchWithContext for the reflector's older interface.
func (lw summaryListWatch) Watch(options metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), options)
}
