package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// ChangeCauseAnnotation on a ConfigSet is copied into the ConfigRevision its change makes.
	ChangeCauseAnnotation = "config.capstan.dev/change-cause"
	// ConfigSetLabel on a ConfigRevision names the ConfigSet it belongs to, so that
	// label selectors find a ConfigSet's history.
	ConfigSetLabel = "config.capstan.dev/configset"

	// ConfigSetsAnnotation on a Deployment, StatefulSet or DaemonSet names the
	// ConfigSets of its namespace it consumes, separated by commas: the
	// controller manager points its pod template at their current revisions.
	ConfigSetsAnnotation = "config.capstan.dev/configsets"
	// RevisionsAnnotation on a pod template records the revision of each
	// ConfigSet it refers to, as NAME=REVISION pairs separated by commas.
	RevisionsAnnotation = "config.capstan.dev/revisions"
	// ProjectionLabel marks the ConfigMaps and Secrets projected from a
	// ConfigSet: ProjectionPerRevision or ProjectionStable.
	ProjectionLabel = "config.capstan.dev/projection"
	// RevisionLabel on a projected ConfigMap or Secret is the revision it holds.
	RevisionLabel = "config.capstan.dev/revision"
	// ProjectionPerRevision labels the immutable pair of one revision, NAME-rN.
	ProjectionPerRevision = "per-revision"
	// ProjectionStable labels the pair named like the ConfigSet, updated in place.
	ProjectionStable = "stable"

	// DefaultRevisionHistoryLimit is how many revisions a ConfigSet keeps when it does not say.
	DefaultRevisionHistoryLimit int32 = 10
	// MinRevisionHistoryLimit is the fewest revisions a ConfigSet may keep: the current one.
	MinRevisionHistoryLimit int32 = 1
	// MaxRevisionHistoryLimit bounds the history a single ConfigSet can make the server keep.
	MaxRevisionHistoryLimit int32 = 1000
	// MaxEntriesBytes bounds the keys and values of a ConfigSet together, so that an
	// object with its metadata always fits etcd's 1.5 MiB request limit.
	MaxEntriesBytes = 1 << 20
	// MaxEncodedEntriesBytes bounds the entries as they are stored: JSON writes
	// some characters (<, >, &, control characters) as six-byte escapes and
	// secret values as base64, so a small raw value can grow sixfold. It leaves
	// room for a full MaxEntriesBytes of secret values in base64.
	MaxEncodedEntriesBytes = MaxEntriesBytes*4/3 + 64<<10
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigSet is a namespaced set of configuration entries whose every change the
// server records as an immutable ConfigRevision.
type ConfigSet struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	Spec   ConfigSetSpec
	Status ConfigSetStatus
}

// ConfigSetSpec holds the entries of a ConfigSet and how its history is kept.
type ConfigSetSpec struct {
	// Data holds plain entries.
	Data map[string]string
	// SecretData holds sensitive entries; keys are unique across Data and SecretData.
	SecretData map[string][]byte
	// Immutable, once true, freezes the entries and cannot be set back to false.
	Immutable bool
	// RevisionHistoryLimit is how many revisions are kept, the current one included.
	RevisionHistoryLimit int32
	// Projection, when set, asks the controller manager to project the entries
	// into ConfigMaps and Secrets that Pods can use.
	Projection *ConfigSetProjection
}

// ConfigSetProjection says which ConfigMaps and Secrets the controller manager
// writes from a ConfigSet's entries.
type ConfigSetProjection struct {
	// PerRevision projects every kept revision N into an immutable ConfigMap
	// (Data) and an immutable Secret (SecretData) named ProjectedName(NAME, N).
	PerRevision bool
	// Stable projects the current revision into a ConfigMap and a Secret named
	// like the ConfigSet, updated in place.
	Stable bool
}

// ConfigSetStatus is what the server and consumers report about a ConfigSet.
type ConfigSetStatus struct {
	// CurrentRevision is 1 on create and goes up by one whenever the entries change.
	CurrentRevision int64
	// ObservedGeneration is the generation the server last processed.
	ObservedGeneration int64
	// Conditions are reported by consumers and controllers through the status subresource.
	Conditions []metav1.Condition
	// Projection is what the controller manager reports about the projection
	// and the workloads that consume it.
	Projection *ConfigSetProjectionStatus
}

// ConfigSetProjectionStatus is what the controller manager reports about a
// ConfigSet's projection and its consumers.
type ConfigSetProjectionStatus struct {
	// Revision is the revision whose ConfigMaps and Secrets were last written.
	Revision int64
	// RolloutRevision is the revision the consuming workloads were last pointed at.
	// A workload rolled back by hand is not pointed forward again until the
	// ConfigSet's revision changes.
	RolloutRevision int64
	// Consumers are the workloads in the namespace that opted in to this ConfigSet.
	Consumers []ConfigSetConsumer
}

// ConfigSetConsumer is one workload that consumes a ConfigSet.
type ConfigSetConsumer struct {
	// Kind is Deployment, StatefulSet or DaemonSet (group apps).
	Kind string
	// Name is the workload's name in the ConfigSet's namespace.
	Name string
	// Revision is the ConfigSet revision the workload's pod template refers to.
	Revision int64
	// RolledOut is true once every replica runs that pod template.
	RolledOut bool
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigSetList is a list of ConfigSets.
type ConfigSetList struct {
	metav1.TypeMeta
	metav1.ListMeta

	Items []ConfigSet
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigSetRollback is the body of a request to the rollback subresource of a
// ConfigSet: it restores the entries of Revision as a new revision.
type ConfigSetRollback struct {
	metav1.TypeMeta
	// ObjectMeta may carry the name of the ConfigSet; when set it must match the URL.
	metav1.ObjectMeta

	// Revision is the revision whose entries are restored.
	Revision int64
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigRevision is an immutable snapshot of a ConfigSet's entries, written by
// the server whenever the ConfigSet's revision changes.
type ConfigRevision struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	// ConfigSetName is the ConfigSet this revision belongs to.
	ConfigSetName string
	// Revision is the ConfigSet's status.currentRevision after the change.
	Revision int64
	// Data holds the plain entries at this revision.
	Data map[string]string
	// SecretData holds the sensitive entries at this revision.
	SecretData map[string][]byte
	// Author is the user name of the request that made the change.
	Author string
	// ChangeCause is the ConfigSet's change-cause annotation at the time of the change.
	ChangeCause string
	// RollbackOf is the revision a rollback restored; zero when the change was not a rollback.
	RollbackOf int64
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigRevisionList is a list of ConfigRevisions.
type ConfigRevisionList struct {
	metav1.TypeMeta
	metav1.ListMeta

	Items []ConfigRevision
}

// EnforcementAction says what happens to a request that breaks a ConfigPolicy.
type EnforcementAction string

const (
	// EnforcementDeny fails the request.
	EnforcementDeny EnforcementAction = "Deny"
	// EnforcementWarn lets the request through with a warning.
	EnforcementWarn EnforcementAction = "Warn"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigPolicy is a cluster-wide guardrail checked on every change of the
// ConfigSets it selects.
type ConfigPolicy struct {
	metav1.TypeMeta
	metav1.ObjectMeta

	Spec   ConfigPolicySpec
	Status ConfigPolicyStatus
}

// ConfigPolicySpec holds the rules of a ConfigPolicy and which ConfigSets they apply to.
type ConfigPolicySpec struct {
	// Selector matches ConfigSet labels; nil matches every ConfigSet.
	Selector *metav1.LabelSelector
	// NamespaceSelector matches the labels of the ConfigSet's namespace; nil matches every namespace.
	NamespaceSelector *metav1.LabelSelector
	// RequiredKeys must each be present in data or secretData.
	RequiredKeys []string
	// ForbiddenKeys must not be present in data or secretData.
	ForbiddenKeys []string
	// KeyPattern is an RE2 expression that every key must match.
	KeyPattern string
	// MaxKeys bounds the number of entries.
	MaxKeys *int32
	// MaxBytes bounds the size of all keys and values together.
	MaxBytes *int64
	// RequireImmutable requires spec.immutable to be true.
	RequireImmutable bool
	// Rules are CEL expressions over data and secretData that must evaluate to true.
	Rules []ConfigPolicyRule
	// Enforcement says whether a violation fails the request or warns.
	Enforcement EnforcementAction
}

// ConfigPolicyRule is one CEL expression of a ConfigPolicy.
type ConfigPolicyRule struct {
	// Expression is a CEL expression over `data` (map of string) and `secretData`
	// (map of bytes) that must evaluate to true.
	Expression string
	// Message is reported when the expression evaluates to false.
	Message string
}

// ConfigPolicyStatus reports whether a ConfigPolicy is in force.
type ConfigPolicyStatus struct {
	// ObservedGeneration is the generation the status describes.
	ObservedGeneration int64
	// Conditions include Ready.
	Conditions []metav1.Condition
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ConfigPolicyList is a list of ConfigPolicies.
type ConfigPolicyList struct {
	metav1.TypeMeta
	metav1.ListMeta

	Items []ConfigPolicy
}
