package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/controller/projection"
	clientset "capstan.dev/capstan/pkg/generated/clientset/versioned"
	"capstan.dev/capstan/test/utils"
	"capstan.dev/capstan/test/utils/controlplane"
)

// projectionTimeout bounds how long the controller manager may take to act
// on a change; it is generous for a loaded two-core machine.
const projectionTimeout = 60 * time.Second

// projectedConfigSet returns a ConfigSet that asks for both projections.
func projectedConfigSet(namespace, name string, data map[string]string, secretData map[string][]byte) *configv1beta1.ConfigSet {
	return &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: configv1beta1.ConfigSetSpec{
			Data:       data,
			SecretData: secretData,
			Projection: &configv1beta1.ConfigSetProjection{PerRevision: true, Stable: true},
		},
	}
}

// consumingDeployment is a Deployment of zero replicas (there is no kubelet,
// and zero replicas let every rollout finish) that names the ConfigSet in its
// annotation and uses it through envFrom, a key reference and a volume.
func consumingDeployment(namespace, name, configSet string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			Annotations: map[string]string{config.ConfigSetsAnnotation: configSet}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       consumingPodSpec(configSet),
			},
		},
	}
}

func consumingPodSpec(configSet string) corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name:  "app",
			Image: "registry.example.com/app:v1",
			EnvFrom: []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: configSet}}},
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: configSet}}},
			},
			Env: []corev1.EnvVar{{Name: "LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: configSet}, Key: "level"}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}},
		}},
		Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configSet}}}}},
	}
}

// templateNames returns every ConfigMap and Secret name a pod spec uses, sorted and unique.
func templateNames(spec *corev1.PodSpec) []string {
	var names []string
	for _, c := range spec.Containers {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				names = append(names, "cm:"+e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				names = append(names, "secret:"+e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				names = append(names, "cm:"+e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			names = append(names, "cm:"+v.ConfigMap.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// wantNames is what templateNames returns for a template pointed at target.
func wantNames(target string) []string {
	return []string{"cm:" + target, "secret:" + target}
}

// waitProjected waits until the ConfigSet reports revision rev projected.
func waitProjected(t *testing.T, capstan clientset.Interface, namespace, name string, rev int64) *configv1beta1.ConfigSet {
	t.Helper()
	var cs *configv1beta1.ConfigSet
	eventually(t, projectionTimeout, fmt.Sprintf("ConfigSet %s/%s projected at revision %d", namespace, name, rev), func() error {
		var err error
		cs, err = capstan.ConfigV1beta1().ConfigSets(namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cond := meta.FindStatusCondition(cs.Status.Conditions, projection.ConditionProjected)
		if cs.Status.Projection == nil || cs.Status.Projection.Revision != rev || cond == nil || cond.Status != metav1.ConditionTrue {
			return fmt.Errorf("status.projection %+v, condition %+v", cs.Status.Projection, cond)
		}
		return nil
	})
	return cs
}

// waitDeploymentAt waits until the Deployment's template points at target
// and the deployment controller made a ReplicaSet of that template.
func waitDeploymentAt(t *testing.T, core kubernetes.Interface, namespace, name, target string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	eventually(t, projectionTimeout, fmt.Sprintf("Deployment %s/%s at %s with its ReplicaSet", namespace, name, target), func() error {
		var err error
		d, err = core.AppsV1().Deployments(namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := templateNames(&d.Spec.Template.Spec); !slices.Equal(got, wantNames(target)) {
			return fmt.Errorf("template uses %v", got)
		}
		rss, err := core.AppsV1().ReplicaSets(namespace).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return err
		}
		for _, rs := range rss.Items {
			if metav1.IsControlledBy(&rs, d) && slices.Equal(templateNames(&rs.Spec.Template.Spec), wantNames(target)) {
				return nil
			}
		}
		return fmt.Errorf("no ReplicaSet of %s uses %s yet (%d ReplicaSets)", name, target, len(rss.Items))
	})
	return d
}

// TestProjection: a ConfigSet that asks for it gets an immutable ConfigMap
// and Secret per revision and a stable pair updated in place, owned by it,
// with secret values only in Secrets.
func TestProjection(t *testing.T) {
	ns := "e2e-projection"
	createNamespace(t, ns, nil)
	capstan, core := adminClients(t)
	const secretValue = "s3cr3t-value-never-in-a-configmap"
	cs, err := capstan.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), projectedConfigSet(ns, "checkout",
		map[string]string{"level": "info", "url": "https://db"}, map[string][]byte{"token": []byte(secretValue)}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitProjected(t, capstan, ns, "checkout", 1)

	checkPair := func(name string, rev int64, immutable bool, level string) {
		t.Helper()
		cm, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("ConfigMap %s: %v", name, err)
		}
		if cm.Data["level"] != level || cm.Data["url"] != "https://db" || len(cm.Data) != 2 {
			t.Errorf("ConfigMap %s data = %v, want level=%s and url", name, cm.Data, level)
		}
		if ptr.Deref(cm.Immutable, false) != immutable {
			t.Errorf("ConfigMap %s immutable = %v, want %v", name, cm.Immutable, immutable)
		}
		if !metav1.IsControlledBy(cm, cs) {
			t.Errorf("ConfigMap %s owners = %+v, want the ConfigSet as controller", name, cm.OwnerReferences)
		}
		if cm.Labels[config.ConfigSetLabel] != "checkout" || cm.Labels[config.RevisionLabel] != fmt.Sprint(rev) {
			t.Errorf("ConfigMap %s labels = %v", name, cm.Labels)
		}
		s, err := core.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("Secret %s: %v", name, err)
		}
		if s.Type != corev1.SecretTypeOpaque || string(s.Data["token"]) != secretValue || len(s.Data) != 1 {
			t.Errorf("Secret %s: type %s, keys %d, token right: %v", name, s.Type, len(s.Data), string(s.Data["token"]) == secretValue)
		}
		if ptr.Deref(s.Immutable, false) != immutable || !metav1.IsControlledBy(s, cs) {
			t.Errorf("Secret %s immutable = %v, owners %+v", name, s.Immutable, s.OwnerReferences)
		}
	}
	checkPair("checkout-r1", 1, true, "info")
	checkPair("checkout", 1, false, "info")

	cs, err = capstan.ConfigV1beta1().ConfigSets(ns).Get(t.Context(), "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs.Spec.Data["level"] = "debug"
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Update(t.Context(), cs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitProjected(t, capstan, ns, "checkout", 2)
	checkPair("checkout-r2", 2, true, "debug")
	checkPair("checkout-r1", 1, true, "info")
	checkPair("checkout", 2, false, "debug")

	// Secret values are in Secrets only: no ConfigMap of the namespace holds them.
	cms, err := core.CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		for k, v := range cm.Data {
			if strings.Contains(v, secretValue) || strings.Contains(k, "token") {
				t.Errorf("ConfigMap %s holds the secret entry", cm.Name)
			}
		}
	}
}

// TestRollout: a change rolls an opted-in Deployment and StatefulSet to the
// new revision's objects; `kubectl rollout undo` returns to the old ones and
// stays there; a ConfigSet rollback rolls forward to the restored entries.
func TestRollout(t *testing.T) {
	ns := "e2e-rollout"
	createNamespace(t, ns, nil)
	capstan, core := adminClients(t)
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), projectedConfigSet(ns, "web",
		map[string]string{"level": "info"}, map[string][]byte{"token": []byte("t1")}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.AppsV1().Deployments(ns).Create(t.Context(), consumingDeployment(ns, "web", "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stsLabels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db", Annotations: map[string]string{config.ConfigSetsAnnotation: "web"}},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](0),
			Selector: &metav1.LabelSelector{MatchLabels: stsLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: stsLabels}, Spec: consumingPodSpec("web")},
		},
	}
	if _, err := core.AppsV1().StatefulSets(ns).Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAt(t, core, ns, "web", "web-r1")
	waitStatefulSetAt := func(target string) {
		t.Helper()
		eventually(t, projectionTimeout, "StatefulSet db at "+target+" with its ControllerRevision", func() error {
			s, err := core.AppsV1().StatefulSets(ns).Get(t.Context(), "db", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := templateNames(&s.Spec.Template.Spec); !slices.Equal(got, wantNames(target)) {
				return fmt.Errorf("template uses %v", got)
			}
			if s.Status.ObservedGeneration < s.Generation || s.Status.UpdateRevision == "" {
				return fmt.Errorf("the statefulset controller has not seen generation %d", s.Generation)
			}
			cr, err := core.AppsV1().ControllerRevisions(ns).Get(t.Context(), s.Status.UpdateRevision, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !bytes.Contains(cr.Data.Raw, []byte(`"`+target+`"`)) {
				return fmt.Errorf("ControllerRevision %s does not name %s", cr.Name, target)
			}
			return nil
		})
	}
	waitStatefulSetAt("web-r1")

	change := func(level string) {
		t.Helper()
		patch := fmt.Sprintf(`{"spec":{"data":{"level":%q}}}`, level)
		if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Patch(t.Context(), "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	change("debug")
	d := waitDeploymentAt(t, core, ns, "web", "web-r2")
	if got := d.Spec.Template.Annotations[config.RevisionsAnnotation]; got != "web=2" {
		t.Errorf("template annotation %s = %q, want web=2", config.RevisionsAnnotation, got)
	}
	waitStatefulSetAt("web-r2")
	cs := waitConsumers(t, capstan, ns, "web", map[string]int64{"Deployment/web": 2, "StatefulSet/db": 2})
	if cs.Status.Projection.RolloutRevision != 2 {
		t.Errorf("rolloutRevision = %d, want 2", cs.Status.Projection.RolloutRevision)
	}

	// kubectl rollout undo brings back revision 1's objects with the old
	// template, and the controller leaves it there: the status reports the
	// Deployment at revision 1 while the ConfigSet is at 2.
	k := newKubectl(t, testCluster.AdminKubeconfig)
	k.Run(t, "rollout", "undo", "deployment/web", "-n", ns)
	waitDeploymentAt(t, core, ns, "web", "web-r1")
	waitConsumers(t, capstan, ns, "web", map[string]int64{"Deployment/web": 1, "StatefulSet/db": 2})
	d, err := core.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := templateNames(&d.Spec.Template.Spec); !slices.Equal(got, wantNames("web-r1")) {
		t.Errorf("after undo the controller moved the Deployment to %v", got)
	}

	// A ConfigSet rollback to revision 1 is revision 3 with revision 1's
	// entries: every consumer rolls forward to it.
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Rollback(t.Context(), "web",
		&configv1beta1.ConfigSetRollback{Revision: 1}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAt(t, core, ns, "web", "web-r3")
	waitStatefulSetAt("web-r3")
	cm, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), "web-r3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["level"] != "info" {
		t.Errorf("web-r3 level = %q, want revision 1's info", cm.Data["level"])
	}
	waitConsumers(t, capstan, ns, "web", map[string]int64{"Deployment/web": 3, "StatefulSet/db": 3})

	// kubectl capstan rollout status shows the same as a table.
	out := k.Run(t, "capstan", "rollout", "status", "web", "-n", ns, "--watch=false")
	requireContains(t, out, "Deployment", "StatefulSet", "db")

	// The controller manager counted what it did, on its /metrics behind
	// delegated authorization (the admin is allowed).
	metrics := controllerManagerMetrics(t)
	for _, series := range []string{
		`capstan_projection_syncs_total{result="projected"}`,
		`capstan_projection_object_writes_total{kind="Secret", operation="create"}`,
		`capstan_projection_workload_updates_total{kind="Deployment", result="success"}`,
		`capstan_projection_workload_updates_total{kind="StatefulSet", result="success"}`,
		`workqueue_adds_total{name="capstan_projection"}`,
		`capstan_projection_lag_seconds_count`,
		`capstan_projection_rollout_lag_seconds_count`,
	} {
		if v, ok := metrics[series]; !ok || v < 1 {
			t.Errorf("%s = %v (present %v), want at least 1", series, v, ok)
		}
	}
}

// controllerManagerMetrics scrapes the leading controller manager's
// /metrics as the admin and returns each series' value by its name and labels.
func controllerManagerMetrics(t *testing.T) map[string]float64 {
	t.Helper()
	var url string
	for _, name := range []string{controlplane.ProcessControllerManager, controlplane.ProcessControllerManager + "-2"} {
		if p := testCluster.Process(name); p != nil && p.Running() && url == "" {
			url = p.URL
		}
	}
	if url == "" {
		t.Fatal("no controller manager runs")
	}
	return scrapeMetrics(t, restConfig(t, testCluster.AdminKubeconfig), url)
}

// scrapeMetrics reads url/metrics with cfg's credentials and returns each
// series' value by its name and labels.
func scrapeMetrics(t *testing.T, cfg *rest.Config, url string) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := send(t, cfg, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s\n%s", url, resp.Status, body)
	}
	series, err := utils.MetricSeries(body)
	if err != nil {
		t.Fatal(err)
	}
	return series
}

// TestRolloutStablePair: a DaemonSet that consumes a ConfigSet projected only
// under its stable name keeps referring to that name; the revision in its
// template annotation rolls it on every change.
func TestRolloutStablePair(t *testing.T) {
	ns := "e2e-rollout-stable"
	createNamespace(t, ns, nil)
	capstan, core := adminClients(t)
	cs := projectedConfigSet(ns, "agent", map[string]string{"level": "info"}, map[string][]byte{"token": []byte("t")})
	cs.Spec.Projection.PerRevision = false
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), cs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "agent"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent", Annotations: map[string]string{config.ConfigSetsAnnotation: "agent"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: consumingPodSpec("agent")},
		},
	}
	if _, err := core.AppsV1().DaemonSets(ns).Create(t.Context(), ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDaemonSetAt := func(rev int64) {
		t.Helper()
		eventually(t, projectionTimeout, fmt.Sprintf("DaemonSet agent at revision %d with its ControllerRevision", rev), func() error {
			d, err := core.AppsV1().DaemonSets(ns).Get(t.Context(), "agent", metav1.GetOptions{})
			if err != nil {
				return err
			}
			want := fmt.Sprintf("agent=%d", rev)
			if got := d.Spec.Template.Annotations[config.RevisionsAnnotation]; got != want {
				return fmt.Errorf("template annotation %q, want %q", got, want)
			}
			if got := templateNames(&d.Spec.Template.Spec); !slices.Equal(got, wantNames("agent")) {
				return fmt.Errorf("template uses %v, want the stable name", got)
			}
			crs, err := core.AppsV1().ControllerRevisions(ns).List(t.Context(), metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, cr := range crs.Items {
				if metav1.IsControlledBy(&cr, d) && bytes.Contains(cr.Data.Raw, []byte(want)) {
					return nil
				}
			}
			return fmt.Errorf("no ControllerRevision of the DaemonSet holds %s (%d revisions)", want, len(crs.Items))
		})
	}
	waitDaemonSetAt(1)
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Patch(t.Context(), "agent", types.MergePatchType,
		[]byte(`{"spec":{"data":{"level":"debug"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDaemonSetAt(2)
	cm, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["level"] != "debug" || cm.Labels[config.RevisionLabel] != "2" {
		t.Errorf("stable ConfigMap: data %v, labels %v; want revision 2's entries", cm.Data, cm.Labels)
	}
	if _, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), "agent-r2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a ConfigSet projected only under its stable name got a per-revision ConfigMap: %v", err)
	}
	waitConsumers(t, capstan, ns, "agent", map[string]int64{"DaemonSet/agent": 2})
}

// waitConsumers waits until status.projection.consumers reports each
// KIND/NAME at the given revision, and returns the ConfigSet.
func waitConsumers(t *testing.T, capstan clientset.Interface, namespace, name string, want map[string]int64) *configv1beta1.ConfigSet {
	t.Helper()
	var cs *configv1beta1.ConfigSet
	eventually(t, projectionTimeout, fmt.Sprintf("consumers of %s/%s at %v", namespace, name, want), func() error {
		var err error
		cs, err = capstan.ConfigV1beta1().ConfigSets(namespace).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cs.Status.Projection == nil {
			return fmt.Errorf("no status.projection")
		}
		got := map[string]int64{}
		for _, c := range cs.Status.Projection.Consumers {
			got[c.Kind+"/"+c.Name] = c.Revision
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("consumers %v", got)
		}
		return nil
	})
	return cs
}

// TestProjectionPruning: pairs beyond revisionHistoryLimit stay while a
// ReplicaSet uses them and go once none does.
func TestProjectionPruning(t *testing.T) {
	ns := "e2e-pruning"
	createNamespace(t, ns, nil)
	capstan, core := adminClients(t)
	cs := projectedConfigSet(ns, "app", map[string]string{"level": "v1"}, nil)
	cs.Spec.Projection.Stable = false
	cs.Spec.RevisionHistoryLimit = ptr.To[int32](2)
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), cs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.AppsV1().Deployments(ns).Create(t.Context(), consumingDeployment(ns, "app", "app"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAt(t, core, ns, "app", "app-r1")
	for rev := 2; rev <= 4; rev++ {
		patch := fmt.Sprintf(`{"spec":{"data":{"level":"v%d"}}}`, rev)
		if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Patch(t.Context(), "app", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitDeploymentAt(t, core, ns, "app", fmt.Sprintf("app-r%d", rev))
	}
	waitProjected(t, capstan, ns, "app", 4)

	// Revisions 1 and 2 are beyond the limit, but the Deployment's old
	// ReplicaSets (its rollback targets) use them.
	for _, name := range []string{"app-r1", "app-r2", "app-r3", "app-r4"} {
		if _, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("ConfigMap %s: %v (a ReplicaSet still uses it)", name, err)
		}
		if _, err := core.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("Secret %s: %v (a ReplicaSet still uses it)", name, err)
		}
	}

	// Without history the deployment controller deletes the old
	// ReplicaSets, and nothing uses revisions 1 and 2 any more.
	if _, err := core.AppsV1().Deployments(ns).Patch(t.Context(), "app", types.MergePatchType,
		[]byte(`{"spec":{"revisionHistoryLimit":0}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, projectionTimeout, "revisions 1 and 2 pruned", func() error {
		for _, name := range []string{"app-r1", "app-r2"} {
			if _, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("ConfigMap %s: %v", name, err)
			}
			if _, err := core.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("Secret %s: %v", name, err)
			}
		}
		return nil
	})
	for _, name := range []string{"app-r3", "app-r4"} {
		if _, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("kept revision's ConfigMap %s: %v", name, err)
		}
	}

	// Deleting the ConfigSet removes all it projected, through the cluster's
	// garbage collector.
	if err := capstan.ConfigV1beta1().ConfigSets(ns).Delete(t.Context(), "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, projectionTimeout, "projected objects collected", func() error {
		sel := metav1.ListOptions{LabelSelector: config.ConfigSetLabel + "=app"}
		cms, err := core.CoreV1().ConfigMaps(ns).List(t.Context(), sel)
		if err != nil {
			return err
		}
		secrets, err := core.CoreV1().Secrets(ns).List(t.Context(), sel)
		if err != nil {
			return err
		}
		if n := len(cms.Items) + len(secrets.Items); n > 0 {
			return fmt.Errorf("%d left", n)
		}
		return nil
	})
}

// TestProjectionNameConflict: a user's ConfigMap with a projected name is
// left alone and the ConfigSet says why it is not projected.
func TestProjectionNameConflict(t *testing.T) {
	ns := "e2e-projection-conflict"
	createNamespace(t, ns, nil)
	capstan, core := adminClients(t)
	mine := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash-r1"}, Data: map[string]string{"mine": "yes"}}
	mine, err := core.CoreV1().ConfigMaps(ns).Create(t.Context(), mine, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := projectedConfigSet(ns, "clash", map[string]string{"level": "info"}, nil)
	cs.Spec.Projection.Stable = false
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), cs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, projectionTimeout, "NameConflict reported", func() error {
		got, err := capstan.ConfigV1beta1().ConfigSets(ns).Get(t.Context(), "clash", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, projection.ConditionProjected)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != projection.ReasonNameConflict {
			return fmt.Errorf("condition %+v", cond)
		}
		if !strings.Contains(cond.Message, "ConfigMap "+ns+"/clash-r1") {
			return fmt.Errorf("message %q does not name the ConfigMap", cond.Message)
		}
		return nil
	})
	after, err := core.CoreV1().ConfigMaps(ns).Get(t.Context(), "clash-r1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != mine.ResourceVersion || len(after.OwnerReferences) != 0 || after.Data["mine"] != "yes" {
		t.Errorf("the user's ConfigMap changed: %+v", after)
	}
}

// TestControllerManagerLeaderElection: of two replicas only the leader runs
// the controllers; killing it hands over within the lease duration, and the
// change made meanwhile rolls the Deployment exactly once.
func TestControllerManagerLeaderElection(t *testing.T) {
	ns := "e2e-leader"
	createNamespace(t, ns, nil)
	capstan, core := adminClients(t)
	first := testCluster.Process(controlplane.ProcessControllerManager)
	if first == nil || !first.Running() {
		t.Fatal("the cluster's controller manager is not running")
	}
	second, err := testCluster.StartControllerManager(t.Context(), controlplane.ProcessControllerManager+"-2")
	if err != nil {
		t.Fatal(err)
	}
	lease, err := core.CoordinationV1().Leases(controlplane.CapstanNamespace).Get(t.Context(), "capstan-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leader := ptr.Deref(lease.Spec.HolderIdentity, "")

	// The first replica leads (it held the lease before the second
	// started); the second waits and has started no controller.
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Create(t.Context(), projectedConfigSet(ns, "svc",
		map[string]string{"level": "info"}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.AppsV1().Deployments(ns).Create(t.Context(), consumingDeployment(ns, "svc", "svc"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDeploymentAt(t, core, ns, "svc", "svc-r1")
	rssBefore, err := core.AppsV1().ReplicaSets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=svc"})
	if err != nil {
		t.Fatal(err)
	}
	const started = "Starting the projection controller"
	if log := readLog(t, second.LogFile); strings.Contains(log, started) {
		t.Fatalf("the second replica started its controllers while %s leads", leader)
	}

	// Kill the leader, as a crash would, and change the ConfigSet at once.
	if err := first.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if _, err := capstan.ConfigV1beta1().ConfigSets(ns).Patch(t.Context(), "svc", types.MergePatchType,
		[]byte(`{"spec":{"data":{"level":"debug"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*controlplane.ControllerManagerLeaseDuration+projectionTimeout, "the second replica leads", func() error {
		l, err := core.CoordinationV1().Leases(controlplane.CapstanNamespace).Get(t.Context(), "capstan-controller-manager", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h := ptr.Deref(l.Spec.HolderIdentity, ""); h == leader || h == "" {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	handover := time.Since(killed)
	waitDeploymentAt(t, core, ns, "svc", "svc-r2")
	t.Logf("handover in %s (lease %s); Deployment at svc-r2 %s after the kill", handover.Round(time.Millisecond),
		controlplane.ControllerManagerLeaseDuration, time.Since(killed).Round(time.Millisecond))
	// The lease expires LeaseDuration after the last renewal; the new leader
	// acquires it on its next retry (1s) with a read and a write of the
	// Lease, which took up to 2.4s beyond that on this 2-core machine under
	// load (10.4s in all); the bound leaves room for a busier CI.
	if limit := 2 * controlplane.ControllerManagerLeaseDuration; handover > limit {
		t.Errorf("handover took %s, more than twice the lease duration (%s)", handover, limit)
	}
	if !strings.Contains(readLog(t, second.LogFile), started) {
		t.Error("the second replica leads but never logged starting its controllers")
	}
	// Exactly one rollout for the change: one more ReplicaSet, with the
	// next Deployment revision, than before the kill.
	rss, err := core.AppsV1().ReplicaSets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=svc"})
	if err != nil {
		t.Fatal(err)
	}
	revBefore, revAfter := maxRevision(rssBefore.Items), maxRevision(rss.Items)
	if len(rss.Items) != len(rssBefore.Items)+1 || revAfter != revBefore+1 {
		t.Errorf("ReplicaSets went from %d (revision %d) to %d (revision %d): want one rollout",
			len(rssBefore.Items), revBefore, len(rss.Items), revAfter)
	}
}

// maxRevision is the highest deployment revision among ReplicaSets; the
// deployment controller sets it when it creates one.
func maxRevision(rss []appsv1.ReplicaSet) int {
	highest := 0
	for _, rs := range rss {
		var n int
		if _, err := fmt.Sscan(rs.Annotations["deployment.kubernetes.io/revision"], &n); err == nil && n > highest {
			highest = n
		}
	}
	return highest
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
