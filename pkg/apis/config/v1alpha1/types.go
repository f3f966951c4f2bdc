package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:method=Rollback,verb=create,subresource=rollback,input=ConfigSetRollback,result=ConfigSet
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigSet is a namespaced set of configuration entries whose every change the
// server records as an immutable ConfigRevision.
type ConfigSet struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// spec holds the entries and how their history is kept.
	// +optional
	Spec ConfigSetSpec `json:"spec,omitempty" protobuf:"bytes,2,opt,name=spec"`
	// status is written by the server and by consumers through the status subresource.
	// +optional
	Status ConfigSetStatus `json:"status,omitempty" protobuf:"bytes,3,opt,name=status"`
}

// ConfigSetSpec holds the entries of a ConfigSet and how its history is kept.
type ConfigSetSpec struct {
	// entries are the ConfigSet's entries, one per key. Keys consist of
	// alphanumerics, '-', '_' or '.', at most 253 characters, and are unique.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +patchStrategy=merge
	// +patchMergeKey=key
	Entries []ConfigEntry `json:"entries,omitempty" patchStrategy:"merge" patchMergeKey:"key" protobuf:"bytes,1,rep,name=entries"`
	// immutable, once true, freezes data and secretData; it cannot be set back to false.
	// +optional
	Immutable *bool `json:"immutable,omitempty" protobuf:"varint,2,opt,name=immutable"`
	// revisionHistoryLimit is how many ConfigRevisions are kept, the current one
	// included. 1 to 1000; defaults to 10. The server also bounds the bytes of
	// entries that one ConfigSet's revisions hold together (its
	// --history-max-bytes, 10 MiB by default): beyond it the oldest revisions
	// are pruned whatever this limit says, and the write that caused it gets a
	// warning. The current revision is always kept.
	// +optional
	// +default=10
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty" protobuf:"varint,3,opt,name=revisionHistoryLimit"`
	// projection, when set, asks capstan-controller-manager to project the
	// entries into ConfigMaps and Secrets that Pods can use, and to roll the
	// workloads that opt in (annotation config.capstan.dev/configsets) when the
	// revision changes.
	// +optional
	Projection *ConfigSetProjection `json:"projection,omitempty" protobuf:"bytes,4,opt,name=projection"`
}

// ConfigSetStatus is what the server and consumers report about a ConfigSet.
type ConfigSetStatus struct {
	// currentRevision is 1 on create and goes up by one whenever the entries change.
	// +optional
	CurrentRevision int64 `json:"currentRevision,omitempty" protobuf:"varint,1,opt,name=currentRevision"`
	// observedGeneration is the generation the server last processed.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty" protobuf:"varint,2,opt,name=observedGeneration"`
	// conditions are reported by consumers and controllers, for example that they
	// applied a revision.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type" protobuf:"bytes,3,rep,name=conditions"`
	// projection is what capstan-controller-manager reports about the
	// projection and the workloads that consume it.
	// +optional
	Projection *ConfigSetProjectionStatus `json:"projection,omitempty" protobuf:"bytes,4,opt,name=projection"`
}

// ConfigSetProjection says which ConfigMaps and Secrets capstan-controller-manager
// writes from a ConfigSet's entries. At least one of perRevision and stable is true.
type ConfigSetProjection struct {
	// perRevision projects every kept revision N into an immutable ConfigMap
	// holding data and an immutable Secret (type Opaque) holding secretData,
	// both named NAME-rN, owned by the ConfigSet. Those still referenced by a
	// workload, ReplicaSet, ControllerRevision or Pod outlive the revision.
	// +optional
	PerRevision bool `json:"perRevision,omitempty" protobuf:"varint,1,opt,name=perRevision"`
	// stable projects the current revision into a ConfigMap and a Secret named
	// like the ConfigSet, updated in place, for consumers that reload mounted files.
	// +optional
	Stable bool `json:"stable,omitempty" protobuf:"varint,2,opt,name=stable"`
}

// ConfigSetProjectionStatus is what capstan-controller-manager reports about a
// ConfigSet's projection and its consumers.
type ConfigSetProjectionStatus struct {
	// revision is the revision whose ConfigMaps and Secrets were last written.
	// +optional
	Revision int64 `json:"revision,omitempty" protobuf:"varint,1,opt,name=revision"`
	// rolloutRevision is the revision the consuming workloads were last pointed
	// at. A workload rolled back by hand (kubectl rollout undo) is not pointed
	// forward again until the ConfigSet's revision changes.
	// +optional
	RolloutRevision int64 `json:"rolloutRevision,omitempty" protobuf:"varint,2,opt,name=rolloutRevision"`
	// consumers are the workloads in the namespace that use this ConfigSet.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	Consumers []ConfigSetConsumer `json:"consumers,omitempty" protobuf:"bytes,3,rep,name=consumers"`
}

// ConfigSetConsumer is one workload that uses a ConfigSet.
type ConfigSetConsumer struct {
	// kind is Deployment, StatefulSet or DaemonSet (group apps).
	Kind string `json:"kind" protobuf:"bytes,1,opt,name=kind"`
	// name is the workload's name in the ConfigSet's namespace.
	Name string `json:"name" protobuf:"bytes,2,opt,name=name"`
	// revision is the ConfigSet revision the workload's pod template refers to.
	// +optional
	Revision int64 `json:"revision,omitempty" protobuf:"varint,3,opt,name=revision"`
	// rolledOut is true once every replica runs that pod template.
	// +optional
	RolledOut bool `json:"rolledOut,omitempty" protobuf:"varint,4,opt,name=rolledOut"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigSetList is a list of ConfigSets.
type ConfigSetList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// items is the list of ConfigSets.
	Items []ConfigSet `json:"items" protobuf:"bytes,2,rep,name=items"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigSetRollback is the body of a request to the rollback subresource of a
// ConfigSet: it restores the entries of a kept revision as a new revision.
type ConfigSetRollback struct {
	metav1.TypeMeta `json:",inline"`
	// metadata may carry the name of the ConfigSet; when set it must match the URL.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// revision is the revision whose entries are restored.
	Revision int64 `json:"revision" protobuf:"varint,2,opt,name=revision"`
}

// +genclient
// +genclient:onlyVerbs=get,list,watch,delete,deleteCollection
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigRevision is an immutable snapshot of a ConfigSet's entries, written by
// the server whenever the ConfigSet's revision changes.
type ConfigRevision struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// configSetName is the ConfigSet this revision belongs to.
	ConfigSetName string `json:"configSetName" protobuf:"bytes,2,opt,name=configSetName"`
	// revision is the ConfigSet's status.currentRevision after the change.
	Revision int64 `json:"revision" protobuf:"varint,3,opt,name=revision"`
	// entries are the ConfigSet's entries at this revision.
	// +optional
	// +listType=atomic
	Entries []ConfigEntry `json:"entries,omitempty" protobuf:"bytes,4,rep,name=entries"`
	// author is the user name of the request that made the change.
	// +optional
	Author string `json:"author,omitempty" protobuf:"bytes,5,opt,name=author"`
	// changeCause is the ConfigSet's config.capstan.dev/change-cause annotation
	// at the time of the change.
	// +optional
	ChangeCause string `json:"changeCause,omitempty" protobuf:"bytes,6,opt,name=changeCause"`
	// rollbackOf is the revision a rollback restored, when this revision is a rollback.
	// +optional
	RollbackOf int64 `json:"rollbackOf,omitempty" protobuf:"varint,7,opt,name=rollbackOf"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigRevisionList is a list of ConfigRevisions.
type ConfigRevisionList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// items is the list of ConfigRevisions.
	Items []ConfigRevision `json:"items" protobuf:"bytes,2,rep,name=items"`
}

// EnforcementAction says what happens to a request that breaks a ConfigPolicy.
// +enum
type EnforcementAction string

const (
	// EnforcementDeny fails the request.
	EnforcementDeny EnforcementAction = "Deny"
	// EnforcementWarn lets the request through with a warning.
	EnforcementWarn EnforcementAction = "Warn"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigPolicy is a cluster-wide guardrail checked on every change of the
// ConfigSets it selects.
type ConfigPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// spec holds the rules and which ConfigSets they apply to.
	// +optional
	Spec ConfigPolicySpec `json:"spec,omitempty" protobuf:"bytes,2,opt,name=spec"`
	// status reports whether the policy is in force.
	// +optional
	Status ConfigPolicyStatus `json:"status,omitempty" protobuf:"bytes,3,opt,name=status"`
}

// ConfigPolicySpec holds the rules of a ConfigPolicy and which ConfigSets they apply to.
type ConfigPolicySpec struct {
	// selector matches ConfigSet labels; when absent the policy selects every ConfigSet.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty" protobuf:"bytes,1,opt,name=selector"`
	// namespaceSelector matches the labels of the ConfigSet's namespace; when absent
	// every namespace matches. It needs the cluster's core API, so in local mode a
	// policy with a namespaceSelector matches nothing.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty" protobuf:"bytes,2,opt,name=namespaceSelector"`
	// requiredKeys must each be present in data or secretData.
	// +optional
	// +listType=set
	RequiredKeys []string `json:"requiredKeys,omitempty" protobuf:"bytes,3,rep,name=requiredKeys"`
	// forbiddenKeys must not be present in data or secretData.
	// +optional
	// +listType=set
	ForbiddenKeys []string `json:"forbiddenKeys,omitempty" protobuf:"bytes,4,rep,name=forbiddenKeys"`
	// keyPattern is an RE2 regular expression that every key must match.
	// +optional
	KeyPattern string `json:"keyPattern,omitempty" protobuf:"bytes,5,opt,name=keyPattern"`
	// maxKeys bounds the number of entries in data and secretData together.
	// +optional
	MaxKeys *int32 `json:"maxKeys,omitempty" protobuf:"varint,6,opt,name=maxKeys"`
	// maxBytes bounds the size of all keys and values together.
	// +optional
	MaxBytes *int64 `json:"maxBytes,omitempty" protobuf:"varint,7,opt,name=maxBytes"`
	// requireImmutable requires spec.immutable to be true.
	// +optional
	RequireImmutable bool `json:"requireImmutable,omitempty" protobuf:"varint,8,opt,name=requireImmutable"`
	// rules are CEL expressions over data and secretData that must evaluate to true.
	// +optional
	// +listType=atomic
	Rules []ConfigPolicyRule `json:"rules,omitempty" protobuf:"bytes,9,rep,name=rules"`
	// enforcement is Deny (the request fails) or Warn (it succeeds with a warning).
	// Defaults to Deny.
	// +optional
	// +default="Deny"
	Enforcement EnforcementAction `json:"enforcement,omitempty" protobuf:"bytes,10,opt,name=enforcement,casttype=EnforcementAction"`
}

// ConfigPolicyRule is one CEL expression of a ConfigPolicy.
type ConfigPolicyRule struct {
	// expression is a CEL expression over `data` (map of string to string) and
	// `secretData` (map of string to bytes) that must evaluate to true.
	Expression string `json:"expression" protobuf:"bytes,1,opt,name=expression"`
	// message is reported when the expression evaluates to false.
	// +optional
	Message string `json:"message,omitempty" protobuf:"bytes,2,opt,name=message"`
}

// ConfigPolicyStatus reports whether a ConfigPolicy is in force.
type ConfigPolicyStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty" protobuf:"varint,1,opt,name=observedGeneration"`
	// conditions include Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type" protobuf:"bytes,2,rep,name=conditions"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigPolicyList is a list of ConfigPolicies.
type ConfigPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`

	// items is the list of ConfigPolicies.
	Items []ConfigPolicy `json:"items" protobuf:"bytes,2,rep,name=items"`
}

// ConfigEntry is one entry of a ConfigSet in the v1alpha1 shape.
type ConfigEntry struct {
	// key is the entry's name.
	Key string `json:"key" protobuf:"bytes,1,opt,name=key"`
	// value is the entry's value. For a secret entry it is the base64 encoding
	// of the value's bytes, as in a Secret's data.
	// +optional
	Value string `json:"value,omitempty" protobuf:"bytes,2,opt,name=value"`
	// secret marks a sensitive entry: its value is encrypted at rest, and later
	// versions keep it in secretData.
	// +optional
	Secret bool `json:"secret,omitempty" protobuf:"varint,3,opt,name=secret"`
}
