// Package validation checks config.capstan.dev objects in their internal form.
//
// Every function is pure and returns a field.ErrorList whose paths name the
// offending field exactly as a client of any served version spells it, so that
// the registry can turn the list into a 422 Invalid response.
package validation

import (
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/policyrule"
)

const (
	// MaxPolicyRules bounds the CEL rules of one ConfigPolicy, and with them the
	// time admission spends evaluating a single policy.
	MaxPolicyRules = 64
	// MaxRuleMessageLength bounds, in characters, the message a broken rule
	// reports; it ends up in an error response or a Warning header.
	MaxRuleMessageLength = 1024
)

// immutableDetail is the message for every change refused because a ConfigSet is immutable.
const immutableDetail = "field is immutable when spec.immutable is true"

// supportedEnforcements are the values of spec.enforcement.
var supportedEnforcements = []config.EnforcementAction{config.EnforcementDeny, config.EnforcementWarn}

// EntriesSize is the size of a ConfigSet's entries as config.MaxEntriesBytes
// and a ConfigPolicy's maxBytes count it: every key and value of data and
// secretData, in bytes. It is exported so that admission measures maxBytes
// exactly as validation measures the limit.
func EntriesSize(data map[string]string, secretData map[string][]byte) int64 {
	var size int64
	for k, v := range data {
		size += int64(len(k) + len(v))
	}
	for k, v := range secretData {
		size += int64(len(k) + len(v))
	}
	return size
}

// EncodedEntriesSize is the size the keys and values of data and secretData
// take in the stored JSON: strings escaped as encoding/json escapes them (with
// HTML escaping, as the server's serializer does), secret values in base64.
func EncodedEntriesSize(data map[string]string, secretData map[string][]byte) int64 {
	var size int64
	for k, v := range data {
		size += jsonStringSize(k) + jsonStringSize(v)
	}
	for k, v := range secretData {
		size += jsonStringSize(k) + int64(base64.StdEncoding.EncodedLen(len(v))) + 2
	}
	return size
}

// jsonStringSize counts the bytes of s as a quoted JSON string.
func jsonStringSize(s string) int64 {
	size := int64(2)
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\' || b == '\n' || b == '\r' || b == '\t':
				size += 2
			case b < 0x20 || b == '<' || b == '>' || b == '&':
				size += 6
			default:
				size++
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			size += 6 // written as \ufffd
		case r == '\u2028' || r == '\u2029':
			size += 6
		default:
			size += int64(n)
		}
		i += n
	}
	return size
}

// ValidateConfigSet validates a ConfigSet on create, and the whole new object on update.
func ValidateConfigSet(cs *config.ConfigSet) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&cs.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	allErrs = append(allErrs, validateConfigSetSpec(&cs.Spec, field.NewPath("spec"))...)
	allErrs = append(allErrs, validateProjection(cs.Name, cs.Spec.Projection, field.NewPath("spec", "projection"))...)
	allErrs = append(allErrs, validateConfigSetStatus(&cs.Status, field.NewPath("status"))...)
	return allErrs
}

// MaxProjectedConfigSetNameLength bounds the name of a ConfigSet projected per
// revision, so that NAME-rN is a valid object name for any revision N.
const MaxProjectedConfigSetNameLength = validation.DNS1123SubdomainMaxLength - len("-r9223372036854775807")

func validateProjection(name string, p *config.ConfigSetProjection, fldPath *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	var allErrs field.ErrorList
	if !p.PerRevision && !p.Stable {
		allErrs = append(allErrs, field.Required(fldPath, "must set perRevision, stable or both to true; remove projection to project nothing"))
	}
	if p.PerRevision && len(name) > MaxProjectedConfigSetNameLength {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("perRevision"), p.PerRevision,
			fmt.Sprintf("the ConfigSet's name may not be longer than %d characters, so that NAME-rN is a valid ConfigMap and Secret name", MaxProjectedConfigSetNameLength)))
	}
	return allErrs
}

func validateConfigSetSpec(spec *config.ConfigSetSpec, fldPath *field.Path) field.ErrorList {
	allErrs := validateEntries(spec.Data, spec.SecretData, fldPath.Child("data"), fldPath.Child("secretData"))
	if size := EntriesSize(spec.Data, spec.SecretData); size > config.MaxEntriesBytes {
		// TooLong, so that the response does not echo a megabyte of entries back.
		err := field.TooLong(fldPath, "", config.MaxEntriesBytes)
		err.Detail = fmt.Sprintf("the keys and values of data and secretData take %d bytes together, which may not be more than %d bytes",
			size, config.MaxEntriesBytes)
		allErrs = append(allErrs, err)
	}
	if size := EncodedEntriesSize(spec.Data, spec.SecretData); size > config.MaxEncodedEntriesBytes {
		err := field.TooLong(fldPath, "", config.MaxEncodedEntriesBytes)
		err.Detail = fmt.Sprintf("the entries take %d bytes once encoded for storage (JSON escapes characters such as <, > and & "+
			"and encodes secret values in base64), which may not be more than %d bytes", size, config.MaxEncodedEntriesBytes)
		allErrs = append(allErrs, err)
	}
	if spec.RevisionHistoryLimit < config.MinRevisionHistoryLimit || spec.RevisionHistoryLimit > config.MaxRevisionHistoryLimit {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("revisionHistoryLimit"), spec.RevisionHistoryLimit,
			fmt.Sprintf("must be between %d and %d, inclusive", config.MinRevisionHistoryLimit, config.MaxRevisionHistoryLimit)))
	}
	return allErrs
}

func validateConfigSetStatus(status *config.ConfigSetStatus, fldPath *field.Path) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateNonnegativeField(status.CurrentRevision, fldPath.Child("currentRevision"))
	allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(status.ObservedGeneration, fldPath.Child("observedGeneration"))...)
	allErrs = append(allErrs, metav1validation.ValidateConditions(status.Conditions, fldPath.Child("conditions"))...)
	if p := status.Projection; p != nil {
		pPath := fldPath.Child("projection")
		allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(p.Revision, pPath.Child("revision"))...)
		allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(p.RolloutRevision, pPath.Child("rolloutRevision"))...)
		seen := map[[2]string]bool{}
		for i, c := range p.Consumers {
			cPath := pPath.Child("consumers").Index(i)
			if !consumerKinds.Has(c.Kind) {
				allErrs = append(allErrs, field.NotSupported(cPath.Child("kind"), c.Kind, sets.List(consumerKinds)))
			}
			for _, msg := range validation.IsDNS1123Subdomain(c.Name) {
				allErrs = append(allErrs, field.Invalid(cPath.Child("name"), c.Name, msg))
			}
			allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(c.Revision, cPath.Child("revision"))...)
			key := [2]string{c.Kind, c.Name}
			if seen[key] {
				allErrs = append(allErrs, field.Duplicate(cPath, c.Kind+"/"+c.Name))
			}
			seen[key] = true
		}
	}
	return allErrs
}

// consumerKinds are the workload kinds (group apps) that may consume a ConfigSet.
var consumerKinds = sets.New("Deployment", "StatefulSet", "DaemonSet")

// validateEntries checks every key of data and secretData, and that no key is
// in both: the v1alpha1 shape lists them together, where a key must be unique.
// Keys are visited in order so that the errors come in the same order every time.
func validateEntries(data map[string]string, secretData map[string][]byte, dataPath, secretDataPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, k := range slices.Sorted(maps.Keys(data)) {
		allErrs = append(allErrs, validateKey(k, dataPath.Key(k))...)
	}
	for _, k := range slices.Sorted(maps.Keys(secretData)) {
		allErrs = append(allErrs, validateKey(k, secretDataPath.Key(k))...)
		if _, inData := data[k]; inData {
			err := field.Duplicate(secretDataPath.Key(k), k)
			err.Detail = "keys must be unique across data and secretData"
			allErrs = append(allErrs, err)
		}
	}
	return allErrs
}

func validateKey(key string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(key) {
		allErrs = append(allErrs, field.Invalid(fldPath, key, msg))
	}
	return allErrs
}

// ValidateConfigSetUpdate validates an update of a ConfigSet: the whole new
// object, and that nothing frozen by spec.immutable has changed.
func ValidateConfigSetUpdate(newCS, oldCS *config.ConfigSet) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newCS.ObjectMeta, &oldCS.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, ValidateConfigSet(newCS)...)
	if !oldCS.Spec.Immutable {
		return allErrs
	}
	specPath := field.NewPath("spec")
	if !newCS.Spec.Immutable {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("immutable"), immutableDetail))
	}
	// Semantic equality, so that a nil map and an empty one (which every
	// serialization makes the same) are no change.
	if !apiequality.Semantic.DeepEqual(newCS.Spec.Data, oldCS.Spec.Data) {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("data"), immutableDetail))
	}
	if !apiequality.Semantic.DeepEqual(newCS.Spec.SecretData, oldCS.Spec.SecretData) {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("secretData"), immutableDetail))
	}
	return allErrs
}

// ValidateConfigSetStatusUpdate validates an update through the status
// subresource, which may only change the status.
func ValidateConfigSetStatusUpdate(newCS, oldCS *config.ConfigSet) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newCS.ObjectMeta, &oldCS.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateConfigSetStatus(&newCS.Status, field.NewPath("status"))...)
	return allErrs
}

// ValidateConfigSetRollback validates the body of a rollback request. Whether
// the revision is still kept is for the registry to find out.
func ValidateConfigSetRollback(r *config.ConfigSetRollback) field.ErrorList {
	var allErrs field.ErrorList
	if r.Revision < 1 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("revision"), r.Revision, "must be greater than or equal to 1"))
	}
	return allErrs
}

// ValidateConfigRevisionUpdate validates a metadata change of a stored revision.
func ValidateConfigRevisionUpdate(newRev, oldRev *config.ConfigRevision) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newRev.ObjectMeta, &oldRev.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, ValidateConfigRevision(newRev)...)
}

// ValidateConfigRevisionRewrite refuses any difference between a revision a
// user sends back and the stored one, but for the resourceVersion the update
// is conditional on: users may rewrite a revision, never change it.
func ValidateConfigRevisionRewrite(newRev, oldRev *config.ConfigRevision) field.ErrorList {
	const immutable = "configrevisions are written by the server and never change; an update may only send a revision back unchanged, which re-encrypts it after a key rotation"
	var errs field.ErrorList
	// Shallow copies: only the compared-away fields are cleared.
	newMeta, oldMeta := newRev.ObjectMeta, oldRev.ObjectMeta
	newMeta.ResourceVersion, oldMeta.ResourceVersion = "", ""
	if !apiequality.Semantic.DeepEqual(newMeta, oldMeta) {
		errs = append(errs, field.Forbidden(field.NewPath("metadata"), immutable))
	}
	newBody, oldBody := *newRev, *oldRev
	newBody.ObjectMeta, oldBody.ObjectMeta = metav1.ObjectMeta{}, metav1.ObjectMeta{}
	newBody.TypeMeta, oldBody.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}
	if !apiequality.Semantic.DeepEqual(newBody, oldBody) {
		errs = append(errs, field.Forbidden(field.NewPath(""), immutable))
	}
	return errs
}

// ValidateConfigRevision validates a ConfigRevision. The server writes them,
// so an error here is a server bug caught before it is stored.
func ValidateConfigRevision(r *config.ConfigRevision) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&r.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	configSetNamePath := field.NewPath("configSetName")
	if r.ConfigSetName == "" {
		allErrs = append(allErrs, field.Required(configSetNamePath, "must name the ConfigSet the revision belongs to"))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(r.ConfigSetName) {
			allErrs = append(allErrs, field.Invalid(configSetNamePath, r.ConfigSetName, msg))
		}
	}
	if r.Revision < 1 {
		allErrs = append(allErrs, field.Invalid(field.NewPath("revision"), r.Revision, "must be greater than or equal to 1"))
	}
	allErrs = append(allErrs, validateEntries(r.Data, r.SecretData, field.NewPath("data"), field.NewPath("secretData"))...)
	allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(r.RollbackOf, field.NewPath("rollbackOf"))...)
	return allErrs
}

// ValidateConfigPolicy validates a ConfigPolicy on create. Its rules are
// compiled here, so that a rule that cannot run is a 422 on the policy and
// never a surprise in admission.
func ValidateConfigPolicy(p *config.ConfigPolicy) field.ErrorList {
	return validateConfigPolicy(p, nil)
}

// ValidateConfigPolicyUpdate validates an update of a ConfigPolicy: its
// metadata change and the whole new object.
func ValidateConfigPolicyUpdate(newP, oldP *config.ConfigPolicy) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newP.ObjectMeta, &oldP.ObjectMeta, field.NewPath("metadata"))
	// A rule the policy already had is not compiled again: it was accepted when
	// it was written, and a server whose CEL environment has changed since must
	// not block unrelated edits (labels, another rule) of a stored policy.
	stored := sets.New[string]()
	for _, rule := range oldP.Spec.Rules {
		stored.Insert(rule.Expression)
	}
	allErrs = append(allErrs, validateConfigPolicy(newP, stored)...)
	return allErrs
}

// ValidateConfigPolicyStatusUpdate validates an update through the status
// subresource, which may only change the status.
func ValidateConfigPolicyStatusUpdate(newP, oldP *config.ConfigPolicy) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newP.ObjectMeta, &oldP.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateConfigPolicyStatus(&newP.Status, field.NewPath("status"))...)
	return allErrs
}

func validateConfigPolicy(p *config.ConfigPolicy, storedExpressions sets.Set[string]) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&p.ObjectMeta, false, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	allErrs = append(allErrs, validateConfigPolicySpec(&p.Spec, storedExpressions, field.NewPath("spec"))...)
	allErrs = append(allErrs, validateConfigPolicyStatus(&p.Status, field.NewPath("status"))...)
	return allErrs
}

func validateConfigPolicySpec(spec *config.ConfigPolicySpec, storedExpressions sets.Set[string], fldPath *field.Path) field.ErrorList {
	selectorOpts := metav1validation.LabelSelectorValidationOptions{}
	allErrs := metav1validation.ValidateLabelSelector(spec.Selector, selectorOpts, fldPath.Child("selector"))
	allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.NamespaceSelector, selectorOpts, fldPath.Child("namespaceSelector"))...)

	allErrs = append(allErrs, validateKeyList(spec.RequiredKeys, fldPath.Child("requiredKeys"))...)
	allErrs = append(allErrs, validateKeyList(spec.ForbiddenKeys, fldPath.Child("forbiddenKeys"))...)
	required := sets.New(spec.RequiredKeys...)
	for i, k := range spec.ForbiddenKeys {
		if required.Has(k) {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("forbiddenKeys").Index(i), k,
				"may not also be in spec.requiredKeys: no ConfigSet could satisfy the policy"))
		}
	}

	if spec.KeyPattern != "" {
		if _, err := regexp.Compile(spec.KeyPattern); err != nil {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("keyPattern"), spec.KeyPattern, err.Error()))
		}
	}
	if spec.MaxKeys != nil {
		allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(int64(*spec.MaxKeys), fldPath.Child("maxKeys"))...)
	}
	if spec.MaxBytes != nil {
		allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(*spec.MaxBytes, fldPath.Child("maxBytes"))...)
	}
	if !slices.Contains(supportedEnforcements, spec.Enforcement) {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("enforcement"), spec.Enforcement, supportedEnforcements))
	}
	allErrs = append(allErrs, validateRules(spec.Rules, storedExpressions, fldPath.Child("rules"))...)
	return allErrs
}

// validateKeyList checks a list of keys that must each be a valid config key,
// listed once.
func validateKeyList(keys []string, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[string]()
	for i, k := range keys {
		allErrs = append(allErrs, validateKey(k, fldPath.Index(i))...)
		if seen.Has(k) {
			allErrs = append(allErrs, field.Duplicate(fldPath.Index(i), k))
		}
		seen.Insert(k)
	}
	return allErrs
}

func validateRules(rules []config.ConfigPolicyRule, storedExpressions sets.Set[string], fldPath *field.Path) field.ErrorList {
	if len(rules) > MaxPolicyRules {
		// The rules are not compiled one by one: a policy that is refused
		// anyway must not make the server compile thousands of expressions.
		return field.ErrorList{field.TooMany(fldPath, len(rules), MaxPolicyRules)}
	}
	var allErrs field.ErrorList
	for i, rule := range rules {
		rulePath := fldPath.Index(i)
		expressionPath := rulePath.Child("expression")
		switch {
		case strings.TrimSpace(rule.Expression) == "":
			allErrs = append(allErrs, field.Required(expressionPath, "a CEL expression over data and secretData that evaluates to a bool"))
		case storedExpressions.Has(rule.Expression):
		default:
			if _, err := policyrule.Compile(rule.Expression); err != nil {
				allErrs = append(allErrs, field.Invalid(expressionPath, rule.Expression, err.Error()))
			}
		}
		messagePath := rulePath.Child("message")
		if n := utf8.RuneCountInString(rule.Message); n > MaxRuleMessageLength {
			allErrs = append(allErrs, field.TooLongCharacters(messagePath, rule.Message, MaxRuleMessageLength))
		}
		// A Warn policy sends the message in a Warning header, which is one line.
		if strings.ContainsAny(rule.Message, "\r\n") {
			allErrs = append(allErrs, field.Invalid(messagePath, rule.Message, "may not contain line breaks"))
		}
	}
	return allErrs
}

func validateConfigPolicyStatus(status *config.ConfigPolicyStatus, fldPath *field.Path) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateNonnegativeField(status.ObservedGeneration, fldPath.Child("observedGeneration"))
	allErrs = append(allErrs, metav1validation.ValidateConditions(status.Conditions, fldPath.Child("conditions"))...)
	return allErrs
}
