package projection

import (
	"encoding/json"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
)

func TestProjectedRevision(t *testing.T) {
	for _, tc := range []struct {
		name string
		rev  int64
		ok   bool
	}{
		{"app-r7", 7, true},
		{"app-r12", 12, true},
		{"app", 0, false},
		{"app-r", 0, false},
		{"app-r0", 0, false},
		{"app-r07", 0, false},
		{"app-r7x", 0, false},
		{"app-other-r7", 0, false},
		{"apps-r7", 0, false},
	} {
		rev, ok := projectedRevision(tc.name, "app")
		if rev != tc.rev || ok != tc.ok {
			t.Errorf("projectedRevision(%q) = %d, %v; want %d, %v", tc.name, rev, ok, tc.rev, tc.ok)
		}
	}
}

// podSpec uses ConfigMaps and Secrets every way a pod can, naming app,
// an older revision of app, and an unrelated object.
func podSpec() corev1.PodSpec {
	lor := func(n string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: n} }
	container := corev1.Container{
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: lor("app")}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: lor("app-r3")}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: lor("other")}},
		},
		Env: []corev1.EnvVar{
			{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: lor("app-r3"), Key: "a"}}},
			{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: lor("app"), Key: "b"}}},
			{Name: "C", Value: "app"},
		},
	}
	return corev1.PodSpec{
		InitContainers: []corev1.Container{container},
		Containers:     []corev1.Container{container},
		Volumes: []corev1.Volume{
			{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: lor("app")}}},
			{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "app-r3"}}},
			{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: lor("app")}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: lor("unrelated")}},
			}}}},
		},
	}
}

func TestPointAt(t *testing.T) {
	spec := podSpec()
	if !pointAt(&spec, "app", "app-r9") {
		t.Fatal("pointAt changed nothing")
	}
	refs := sets.New[objectRef]()
	references(&spec, refs)
	want := sets.New(
		objectRef{secret: false, name: "app-r9"}, objectRef{secret: true, name: "app-r9"},
		objectRef{secret: false, name: "other"}, objectRef{secret: true, name: "unrelated"},
	)
	if !refs.Equal(want) {
		t.Errorf("references after pointAt = %v, want %v", refs.UnsortedList(), want.UnsortedList())
	}
	if spec.Containers[0].Env[2].Value != "app" {
		t.Error("a plain env value was rewritten")
	}
	if pointAt(&spec, "app", "app-r9") {
		t.Error("pointing at the same target again reported a change")
	}
}

func TestControllerRevisionTemplate(t *testing.T) {
	// The shape the StatefulSet and DaemonSet controllers write.
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{
		"$patch": "replace",
		"spec":   podSpec(),
	}}}
	raw, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, ok := controllerRevisionTemplate(&appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: raw}})
	if !ok {
		t.Fatal("no template found")
	}
	refs := sets.New[objectRef]()
	references(&tmpl.Spec, refs)
	if !refs.Has(objectRef{secret: true, name: "app-r3"}) || !refs.Has(objectRef{name: "app"}) {
		t.Errorf("references = %v", refs.UnsortedList())
	}
	if _, ok := controllerRevisionTemplate(&appsv1.ControllerRevision{Data: runtime.RawExtension{Raw: []byte(`{"x":1}`)}}); ok {
		t.Error("a revision without a template gave one")
	}
}

func TestRevisionsAnnotation(t *testing.T) {
	revs := templateRevisions(" b=2, a=10,bad,c=x,d=0,=3")
	if len(revs) != 2 || revs["a"] != 10 || revs["b"] != 2 {
		t.Errorf("templateRevisions = %v", revs)
	}
	revs["c"] = 1
	if got := formatRevisions(revs); got != "a=10,b=2,c=1" {
		t.Errorf("formatRevisions = %q", got)
	}
	if got := consumedConfigSets(map[string]string{"config.capstan.dev/configsets": " a, b ,,a"}); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("consumedConfigSets = %v", got)
	}
}
