package projection

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"capstan.dev/capstan/pkg/apis/config"
)

// ProjectedName is the name of the ConfigMap and the Secret that hold
// revision rev of the ConfigSet named configSet.
func ProjectedName(configSet string, rev int64) string {
	return configSet + "-r" + strconv.FormatInt(rev, 10)
}

// projectedRevision returns N when name is ProjectedName(configSet, N).
func projectedRevision(name, configSet string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, configSet+"-r")
	if !ok || digits == "" || digits[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil && n > 0
}

// refersTo says whether a ConfigMap or Secret name in a pod template stands
// for the ConfigSet: its stable name, or the name of one of its revisions.
func refersTo(name, configSet string) bool {
	if name == configSet {
		return true
	}
	_, ok := projectedRevision(name, configSet)
	return ok
}

// objectRef is the kind and name of a ConfigMap or Secret a pod spec uses.
type objectRef struct {
	secret bool
	name   string
}

// visitReferences calls f with a pointer to every ConfigMap and Secret name
// in spec: env, envFrom and volumes (projected ones included) of every
// container and init container.
func visitReferences(spec *corev1.PodSpec, f func(secret bool, name *string)) {
	visitContainers := func(containers []corev1.Container) {
		for i := range containers {
			c := &containers[i]
			for j := range c.EnvFrom {
				if r := c.EnvFrom[j].ConfigMapRef; r != nil {
					f(false, &r.Name)
				}
				if r := c.EnvFrom[j].SecretRef; r != nil {
					f(true, &r.Name)
				}
			}
			for j := range c.Env {
				from := c.Env[j].ValueFrom
				if from == nil {
					continue
				}
				if r := from.ConfigMapKeyRef; r != nil {
					f(false, &r.Name)
				}
				if r := from.SecretKeyRef; r != nil {
					f(true, &r.Name)
				}
			}
		}
	}
	visitContainers(spec.InitContainers)
	visitContainers(spec.Containers)
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.ConfigMap != nil {
			f(false, &v.ConfigMap.Name)
		}
		if v.Secret != nil {
			f(true, &v.Secret.SecretName)
		}
		if v.Projected == nil {
			continue
		}
		for j := range v.Projected.Sources {
			s := &v.Projected.Sources[j]
			if s.ConfigMap != nil {
				f(false, &s.ConfigMap.Name)
			}
			if s.Secret != nil {
				f(true, &s.Secret.Name)
			}
		}
	}
}

// references adds every ConfigMap and Secret spec uses to refs.
func references(spec *corev1.PodSpec, refs sets.Set[objectRef]) {
	visitReferences(spec, func(secret bool, name *string) {
		refs.Insert(objectRef{secret: secret, name: *name})
	})
}

// pointAt makes every reference of spec to the ConfigSet (its stable name or
// any of its revisions) refer to target instead, and says whether anything changed.
func pointAt(spec *corev1.PodSpec, configSet, target string) bool {
	changed := false
	visitReferences(spec, func(_ bool, name *string) {
		if *name != target && refersTo(*name, configSet) {
			*name = target
			changed = true
		}
	})
	return changed
}

// controllerRevisionTemplate returns the pod template a StatefulSet's or
// DaemonSet's ControllerRevision keeps: its data is a patch of the workload
// whose spec.template is the whole template.
func controllerRevisionTemplate(cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, bool) {
	raw := cr.Data.Raw
	if len(raw) == 0 {
		return nil, false
	}
	var patch struct {
		Spec struct {
			Template *corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &patch); err != nil || patch.Spec.Template == nil {
		return nil, false
	}
	return patch.Spec.Template, true
}

// consumedConfigSets returns the ConfigSets a workload's
// config.capstan.dev/configsets annotation names.
func consumedConfigSets(annotations map[string]string) []string {
	var names []string
	for _, n := range strings.Split(annotations[config.ConfigSetsAnnotation], ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// templateRevisions parses a pod template's revisions annotation,
// NAME=REVISION pairs separated by commas; malformed pairs are skipped.
func templateRevisions(value string) map[string]int64 {
	revs := map[string]int64{}
	for _, pair := range strings.Split(value, ",") {
		name, rev, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(rev, 10, 64); err == nil && n > 0 && name != "" {
			revs[name] = n
		}
	}
	return revs
}

// TemplateRevision returns the revision of the ConfigSet that a pod
// template's annotations record, or 0.
func TemplateRevision(annotations map[string]string, configSet string) int64 {
	return templateRevisions(annotations[config.RevisionsAnnotation])[configSet]
}

// formatRevisions writes revs the way templateRevisions reads them, sorted by name.
func formatRevisions(revs map[string]int64) string {
	names := make([]string, 0, len(revs))
	for n := range revs {
		names = append(names, n)
	}
	slices.Sort(names)
	pairs := make([]string, len(names))
	for i, n := range names {
		pairs[i] = n + "=" + strconv.FormatInt(revs[n], 10)
	}
	return strings.Join(pairs, ",")
}
