package artifacts

import (
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"capstan.dev/capstan/cmd/apiserver/app"
)

const (
	namespace = "capstan-system"
	group     = "config.capstan.dev"
	// deployDir composes every base; overlays add the Secrets.
	deployDir = "deploy"
	// servingSecret holds Capstan's serving certificate and, as ca.crt, the
	// APIServices' caBundle.
	servingSecret = "capstan-serving-cert"
	// injectAnnotation is cert-manager cainjector's.
	injectAnnotation = "cert-manager.io/inject-ca-from"
)

// scopes says, for every kind the artifacts may contain, whether it is
// namespaced. A new kind must be added here, deliberately.
var scopes = map[string]bool{
	"Namespace":           false,
	"ClusterRole":         false,
	"ClusterRoleBinding":  false,
	"APIService":          false,
	"ServiceAccount":      true,
	"Service":             true,
	"Secret":              true,
	"ConfigMap":           true,
	"Deployment":          true,
	"StatefulSet":         true,
	"PodDisruptionBudget": true,
	"Role":                true,
	"RoleBinding":         true,
	"Issuer":              true,
	"Certificate":         true,
	"ServiceMonitor":      true,
	"PrometheusRule":      true,
}

// overlays are the renderable kustomizations that produce a complete
// deployment (they hold the Secrets or their Certificates).
func overlays(t *testing.T) []string {
	var out []string
	for _, dir := range renderable(t) {
		if strings.HasPrefix(dir, "overlays/") {
			out = append(out, dir)
		}
	}
	if len(out) == 0 {
		t.Fatal("no overlays under artifacts/overlays")
	}
	return out
}

// typed converts an object into its Go type, rejecting unknown fields.
func typed[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	return out
}

func TestEveryKustomizationRenders(t *testing.T) {
	ks := kustomizations(t)
	for _, dir := range renderable(t) {
		t.Run(dir, func(t *testing.T) {
			_, objs := render(t, dir)
			if len(objs) == 0 {
				t.Fatal("renders no objects")
			}
			seen := map[string]bool{}
			for i, o := range objs {
				id := fmt.Sprintf("object %d (%s %s)", i, o.GetKind(), o.GetName())
				if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
					t.Errorf("%s: apiVersion, kind and metadata.name are all required", id)
					continue
				}
				namespaced, known := scopes[o.GetKind()]
				switch {
				case !known:
					t.Errorf("%s: kind %s is not in the test's scope table; add it deliberately", id, o.GetKind())
				case namespaced && o.GetNamespace() == "":
					t.Errorf("%s: namespaced, but has no metadata.namespace", id)
				case !namespaced && o.GetNamespace() != "":
					t.Errorf("%s: cluster-scoped, but has metadata.namespace %q", id, o.GetNamespace())
				}
				key := o.GetAPIVersion() + "/" + o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
				if seen[key] {
					t.Errorf("%s: rendered twice", id)
				}
				seen[key] = true
				// Kinds Go knows are decoded strictly: a misspelt field fails here.
				if typedObj, err := scheme.Scheme.New(o.GroupVersionKind()); err == nil {
					if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, typedObj, true); err != nil {
						t.Errorf("%s: %v", id, err)
					}
				}
				if o.GetKind() == "APIService" {
					if skip, found, _ := unstructured.NestedBool(o.Object, "spec", "insecureSkipTLSVerify"); found || skip {
						t.Errorf("%s: sets insecureSkipTLSVerify; the caBundle is how the aggregator trusts Capstan", id)
					}
				}
				if namespaced && o.GetNamespace() != namespace && !(o.GetKind() == "RoleBinding" && o.GetNamespace() == "kube-system") {
					t.Errorf("%s: in namespace %q; everything but the authentication-reader RoleBinding belongs in %s", id, o.GetNamespace(), namespace)
				}
			}
		})
	}
	t.Run("components are used", func(t *testing.T) {
		used := usedComponents(ks)
		for _, k := range ks {
			if k.Component && !slices.Contains(used, k.Dir) {
				t.Errorf("component %s is used by no kustomization, so nothing renders (or tests) it", k.Dir)
			}
		}
	})
}

func TestAPIServices(t *testing.T) {
	want := map[string]int64{"v1beta1": 15, "v1alpha1": 10}
	for _, dir := range append([]string{deployDir}, overlays(t)...) {
		t.Run(dir, func(t *testing.T) {
			_, objs := render(t, dir)
			apiServices := find(objs, "APIService", "")
			if len(apiServices) != len(want) {
				t.Fatalf("want %d APIServices, got %d", len(want), len(apiServices))
			}
			for _, a := range apiServices {
				version, _, _ := unstructured.NestedString(a.Object, "spec", "version")
				priority, ok := want[version]
				if !ok {
					t.Errorf("APIService %s: unexpected version %q", a.GetName(), version)
					continue
				}
				if a.GetName() != version+"."+group {
					t.Errorf("APIService %s: want the name %s.%s", a.GetName(), version, group)
				}
				g, _, _ := unstructured.NestedString(a.Object, "spec", "group")
				gpm, _, _ := unstructured.NestedInt64(a.Object, "spec", "groupPriorityMinimum")
				vp, _, _ := unstructured.NestedInt64(a.Object, "spec", "versionPriority")
				if g != group || gpm != 1000 || vp != priority {
					t.Errorf("APIService %s: group %q groupPriorityMinimum %d versionPriority %d, want %q 1000 %d", a.GetName(), g, gpm, vp, group, priority)
				}
				name, _, _ := unstructured.NestedString(a.Object, "spec", "service", "name")
				ns, _, _ := unstructured.NestedString(a.Object, "spec", "service", "namespace")
				port, _, _ := unstructured.NestedInt64(a.Object, "spec", "service", "port")
				if name != "capstan" || ns != namespace || port != 443 {
					t.Errorf("APIService %s: service %s/%s port %d, want %s/capstan port 443", a.GetName(), ns, name, port, namespace)
				}
				checkCABundle(t, dir, objs, a)
			}

			svc := typed[corev1.Service](t, one(t, objs, "Service", "capstan"))
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.IntValue() != 8443 {
				t.Errorf("Service capstan: ports %+v, want 443 → 8443", svc.Spec.Ports)
			}
			deploy := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-apiserver"))
			if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(deploy.Spec.Template.Labels)) {
				t.Errorf("Service capstan: selector %v does not select the Deployment's pods %v", svc.Spec.Selector, deploy.Spec.Template.Labels)
			}
		})
	}
}

// checkCABundle checks where an APIService's caBundle comes from: the
// placeholder in the base, the serving Secret's ca.crt in an overlay, or
// cert-manager's cainjector.
func checkCABundle(t *testing.T, dir string, objs []*unstructured.Unstructured, a *unstructured.Unstructured) {
	t.Helper()
	bundle, hasBundle, _ := unstructured.NestedString(a.Object, "spec", "caBundle")
	bundle = strings.Join(strings.Fields(bundle), "")
	decoded, err := base64.StdEncoding.DecodeString(bundle)
	if hasBundle && err != nil {
		t.Errorf("APIService %s: caBundle is not base64: %v", a.GetName(), err)
		return
	}
	if dir == deployDir {
		if !hasBundle {
			t.Errorf("APIService %s: the base should carry the placeholder caBundle", a.GetName())
		}
		if block, _ := pem.Decode(decoded); block != nil {
			t.Errorf("APIService %s: the base's caBundle is a PEM block; it must be a placeholder that trusts nothing", a.GetName())
		}
		return
	}
	if inject := a.GetAnnotations()[injectAnnotation]; inject != "" {
		if hasBundle {
			t.Errorf("APIService %s: has both a caBundle and %s; cainjector owns the field", a.GetName(), injectAnnotation)
		}
		ns, name, _ := strings.Cut(inject, "/")
		certs := find(objs, "Certificate", name)
		if ns != namespace || len(certs) != 1 {
			t.Errorf("APIService %s: %s=%s names no Certificate of this overlay", a.GetName(), injectAnnotation, inject)
			return
		}
		dnsNames, _, _ := unstructured.NestedStringSlice(certs[0].Object, "spec", "dnsNames")
		if !slices.Contains(dnsNames, "capstan."+namespace+".svc") {
			t.Errorf("Certificate %s: dnsNames %v lack capstan.%s.svc, the name the aggregator verifies", name, dnsNames, namespace)
		}
		return
	}
	secrets := find(objs, "Secret", servingSecret)
	if len(secrets) != 1 {
		t.Errorf("APIService %s: neither cainjector nor a %s Secret to take the caBundle from", a.GetName(), servingSecret)
		return
	}
	ca, _, _ := unstructured.NestedString(secrets[0].Object, "data", "ca.crt")
	if !hasBundle || bundle != strings.Join(strings.Fields(ca), "") {
		t.Errorf("APIService %s: caBundle is not the ca.crt of Secret %s", a.GetName(), servingSecret)
	}
	if block, _ := pem.Decode(decoded); block == nil || block.Type != "CERTIFICATE" {
		t.Errorf("APIService %s: caBundle is not a PEM certificate", a.GetName())
	}
}

// parsedArgs are the Deployment's arguments parsed by capstan-apiserver's own flags.
func parsedArgs(t *testing.T, args []string) *app.Options {
	t.Helper()
	o := app.NewOptions(io.Discard)
	fs := pflag.NewFlagSet("capstan-apiserver", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("capstan-apiserver does not accept the Deployment's arguments: %v", err)
	}
	if len(fs.Args()) != 0 {
		t.Fatalf("capstan-apiserver takes no positional arguments, the Deployment passes %q", fs.Args())
	}
	return o
}

// capstanFiles returns, by flag, the files capstan-apiserver reads.
func capstanFiles(o *app.Options) map[string]string {
	etcd := o.Recommended.Etcd.StorageConfig.Transport
	return map[string]string{
		"--tls-cert-file":              o.Recommended.SecureServing.ServerCert.CertKey.CertFile,
		"--tls-private-key-file":       o.Recommended.SecureServing.ServerCert.CertKey.KeyFile,
		"--etcd-cafile":                etcd.TrustedCAFile,
		"--etcd-certfile":              etcd.CertFile,
		"--etcd-keyfile":               etcd.KeyFile,
		"--encryption-provider-config": o.Recommended.Etcd.EncryptionProviderConfigFilepath,
	}
}

// mountedKey returns the Secret name and key that path is inside the
// container, or fails.
func mountedKey(t *testing.T, pod corev1.PodSpec, c corev1.Container, path string) (secret, key string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") || strings.Contains(rel, "/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName, rel
			}
		}
		t.Fatalf("%s is in mount %s, which is not a Secret volume", path, m.Name)
	}
	t.Fatalf("%s is in no volume mount of container %s", path, c.Name)
	return "", ""
}

func TestDeployment(t *testing.T) {
	_, objs := render(t, deployDir)
	d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-apiserver"))
	pod := d.Spec.Template.Spec
	if d.Namespace != namespace {
		t.Errorf("namespace %q, want %s", d.Namespace, namespace)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	if pod.ServiceAccountName != "capstan" {
		t.Errorf("serviceAccountName %q, want capstan", pod.ServiceAccountName)
	}
	one(t, objs, "ServiceAccount", "capstan")
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	checkPodSecurity(t, pod, c)
	checkAntiAffinity(t, pod, d.Spec.Selector)

	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		path := map[string]string{"readiness": "/readyz", "liveness": "/livez"}[name]
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTPS GET of %s", name, path)
			continue
		}
		port := probe.HTTPGet.Port.IntValue()
		if port == 0 {
			for _, p := range c.Ports {
				if p.Name == probe.HTTPGet.Port.String() {
					port = int(p.ContainerPort)
				}
			}
		}
		if probe.HTTPGet.Path != path || probe.HTTPGet.Scheme != corev1.URISchemeHTTPS || port != 8443 {
			t.Errorf("%s probe: %s %s on port %d, want HTTPS %s on 8443", name, probe.HTTPGet.Scheme, probe.HTTPGet.Path, port, path)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("no %s limit", r)
		}
	}

	o := parsedArgs(t, c.Args)
	if o.Mode != app.ModeAggregated {
		t.Errorf("--mode=%s, want %s", o.Mode, app.ModeAggregated)
	}
	if o.Recommended.SecureServing.BindPort != 8443 {
		t.Errorf("--secure-port=%d, want 8443 (the probes' and the Service's target)", o.Recommended.SecureServing.BindPort)
	}
	files := capstanFiles(o)
	wantSecrets := map[string]string{
		"--tls-cert-file":              servingSecret,
		"--tls-private-key-file":       servingSecret,
		"--etcd-cafile":                "capstan-etcd-client",
		"--etcd-certfile":              "capstan-etcd-client",
		"--etcd-keyfile":               "capstan-etcd-client",
		"--encryption-provider-config": "capstan-encryption-config",
	}
	for flag, path := range files {
		if path == "" {
			t.Errorf("%s is not set", flag)
			continue
		}
		secret, _ := mountedKey(t, pod, c, path)
		if secret != wantSecrets[flag] {
			t.Errorf("%s=%s comes from Secret %s, want %s", flag, path, secret, wantSecrets[flag])
		}
	}
	for _, s := range o.Recommended.Etcd.StorageConfig.Transport.ServerList {
		if !strings.HasPrefix(s, "https://") {
			t.Errorf("--etcd-servers has %s; etcd is only spoken to over TLS", s)
		}
	}

	// The kubelet must not kill a server that is still draining: the delay,
	// then the longest request, then the watches, within the grace period.
	run := o.ServerRun
	if run.ShutdownDelayDuration <= 0 {
		t.Error("--shutdown-delay-duration is not set: a stopping pod would get requests until its endpoints go")
	}
	drain := run.ShutdownDelayDuration + max(run.RequestTimeout, run.ShutdownWatchTerminationGracePeriod)
	if grace := pod.TerminationGracePeriodSeconds; grace == nil || time.Duration(*grace)*time.Second <= drain {
		t.Errorf("terminationGracePeriodSeconds %v does not exceed --shutdown-delay-duration + max(--request-timeout, --shutdown-watch-termination-grace-period) = %s", grace, drain)
	}

	pdb := typed[policyv1.PodDisruptionBudget](t, one(t, objs, "PodDisruptionBudget", "capstan-apiserver"))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget capstan-apiserver: minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	checkSelects(t, "PodDisruptionBudget capstan-apiserver", pdb.Spec.Selector, d.Spec.Template.Labels)
}

// checkPodSecurity checks what the restricted Pod Security Standard requires,
// and a read-only root filesystem.
func checkPodSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("want both a pod and a container securityContext")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("runAsNonRoot is not true in the pod and container securityContext")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		t.Errorf("runAsUser %v, want 65532 (distroless nonroot)", sc.RunAsUser)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccompProfile %+v, want RuntimeDefault", psc.SeccompProfile)
	}
}

// checkAntiAffinity checks that replicas prefer different nodes.
func checkAntiAffinity(t *testing.T, pod corev1.PodSpec, selector *metav1.LabelSelector) {
	t.Helper()
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil {
		t.Error("no podAntiAffinity")
		return
	}
	aa := pod.Affinity.PodAntiAffinity
	var terms []corev1.PodAffinityTerm
	terms = append(terms, aa.RequiredDuringSchedulingIgnoredDuringExecution...)
	for _, w := range aa.PreferredDuringSchedulingIgnoredDuringExecution {
		terms = append(terms, w.PodAffinityTerm)
	}
	for _, term := range terms {
		if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil {
			continue
		}
		if equalSelectors(term.LabelSelector, selector) {
			return
		}
	}
	t.Errorf("no podAntiAffinity term keeps pods matching %v on different nodes (kubernetes.io/hostname)", selector)
}

func equalSelectors(a, b *metav1.LabelSelector) bool {
	sa, errA := metav1.LabelSelectorAsSelector(a)
	sb, errB := metav1.LabelSelectorAsSelector(b)
	return errA == nil && errB == nil && sa.String() == sb.String()
}

func checkSelects(t *testing.T, what string, selector *metav1.LabelSelector, podLabels map[string]string) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil || s.Empty() || !s.Matches(labels.Set(podLabels)) {
		t.Errorf("%s: selector %v does not select the pods %v", what, selector, podLabels)
	}
}

// flagValues returns the values of --name=value arguments by name.
func flagValues(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out[name] = value
	}
	return out
}

func TestEtcdStatefulSet(t *testing.T) {
	_, objs := render(t, deployDir)
	s := typed[appsv1.StatefulSet](t, one(t, objs, "StatefulSet", "capstan-etcd"))
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 {
		t.Fatalf("replicas %v, want 3", s.Spec.Replicas)
	}
	if s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: members started one at a time never form the first quorum", s.Spec.PodManagementPolicy)
	}
	pod := s.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	checkPodSecurity(t, pod, c)
	checkAntiAffinity(t, pod, s.Spec.Selector)
	if !strings.HasPrefix(c.Image, "registry.k8s.io/etcd:3.6.") {
		t.Errorf("image %s, want registry.k8s.io/etcd:3.6.x", c.Image)
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Error("want readiness and liveness probes")
	}

	headless := typed[corev1.Service](t, one(t, objs, "Service", s.Spec.ServiceName))
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: clusterIP %q publishNotReadyAddresses %v; want a headless Service that publishes members before they are ready",
			headless.Name, headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
	}
	checkSelects(t, "Service "+headless.Name, &metav1.LabelSelector{MatchLabels: headless.Spec.Selector}, s.Spec.Template.Labels)

	flags := flagValues(c.Args)
	for _, f := range []string{"client-cert-auth", "peer-client-cert-auth"} {
		if flags[f] != "true" {
			t.Errorf("--%s=%q, want true", f, flags[f])
		}
	}
	for _, f := range []string{"trusted-ca-file", "cert-file", "key-file", "peer-trusted-ca-file", "peer-cert-file", "peer-key-file"} {
		if flags[f] == "" {
			t.Errorf("--%s is not set", f)
			continue
		}
		mountedKey(t, pod, c, flags[f])
	}
	for _, f := range []string{"listen-client-urls", "advertise-client-urls", "listen-peer-urls", "initial-advertise-peer-urls"} {
		if !strings.HasPrefix(flags[f], "https://") {
			t.Errorf("--%s=%s, want https", f, flags[f])
		}
	}

	// The initial cluster names every member by its stable DNS name, and
	// Capstan talks to exactly those members.
	var members, clientURLs []string
	for i := range int(*s.Spec.Replicas) {
		host := fmt.Sprintf("%s-%d.%s.%s.svc", s.Name, i, s.Spec.ServiceName, s.Namespace)
		members = append(members, fmt.Sprintf("%s-%d=https://%s:2380", s.Name, i, host))
		clientURLs = append(clientURLs, fmt.Sprintf("https://%s:2379", host))
	}
	if got := flags["initial-cluster"]; got != strings.Join(members, ",") {
		t.Errorf("--initial-cluster=%s\nwant          %s", got, strings.Join(members, ","))
	}
	d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-apiserver"))
	if got := flagValues(d.Spec.Template.Spec.Containers[0].Args)["etcd-servers"]; got != strings.Join(clientURLs, ",") {
		t.Errorf("Capstan's --etcd-servers=%s, want the members %s", got, strings.Join(clientURLs, ","))
	}

	if len(s.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one volumeClaimTemplate, got %d", len(s.Spec.VolumeClaimTemplates))
	}
	claim := s.Spec.VolumeClaimTemplates[0]
	dataDir := flags["data-dir"]
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.Name == claim.Name && strings.HasPrefix(dataDir, m.MountPath+"/") {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("--data-dir=%s is not inside the persistent volume %s", dataDir, claim.Name)
	}
	if _, ok := claim.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		t.Error("the volumeClaimTemplate requests no storage")
	}

	pdb := typed[policyv1.PodDisruptionBudget](t, one(t, objs, "PodDisruptionBudget", "capstan-etcd"))
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PodDisruptionBudget capstan-etcd: minAvailable %v, want 2 (quorum of 3)", pdb.Spec.MinAvailable)
	}
	checkSelects(t, "PodDisruptionBudget capstan-etcd", pdb.Spec.Selector, s.Spec.Template.Labels)
}

// TestOverlaySecrets checks that every Secret a pod mounts, with every key a
// flag reads, exists in each overlay: as a generated Secret or as a
// cert-manager Certificate's Secret.
func TestOverlaySecrets(t *testing.T) {
	for _, dir := range overlays(t) {
		t.Run(dir, func(t *testing.T) {
			_, objs := render(t, dir)
			provided := map[string][]string{}
			for _, s := range find(objs, "Secret", "") {
				data, _, _ := unstructured.NestedMap(s.Object, "data")
				for k := range data {
					provided[s.GetName()] = append(provided[s.GetName()], k)
				}
			}
			for _, c := range find(objs, "Certificate", "") {
				name, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
				provided[name] = []string{"tls.crt", "tls.key", "ca.crt"}
			}
			check := func(what string, pod corev1.PodSpec, c corev1.Container, paths []string) {
				for _, v := range pod.Volumes {
					if v.Secret != nil && provided[v.Secret.SecretName] == nil {
						t.Errorf("%s mounts Secret %s, which the overlay does not provide", what, v.Secret.SecretName)
					}
				}
				for _, p := range paths {
					secret, key := mountedKey(t, pod, c, p)
					if provided[secret] != nil && !slices.Contains(provided[secret], key) {
						t.Errorf("%s reads %s: Secret %s has no key %s (has %v)", what, p, secret, key, provided[secret])
					}
				}
			}
			d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-apiserver"))
			var paths []string
			for _, p := range capstanFiles(parsedArgs(t, d.Spec.Template.Spec.Containers[0].Args)) {
				paths = append(paths, p)
			}
			check("Deployment capstan-apiserver", d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0], paths)

			s := typed[appsv1.StatefulSet](t, one(t, objs, "StatefulSet", "capstan-etcd"))
			paths = nil
			for name, v := range flagValues(s.Spec.Template.Spec.Containers[0].Args) {
				if strings.HasSuffix(name, "-file") {
					paths = append(paths, v)
				}
			}
			check("StatefulSet capstan-etcd", s.Spec.Template.Spec, s.Spec.Template.Spec.Containers[0], paths)
		})
	}
}

// rulesLabelled returns the rules of the ClusterRoles with a label set to "true".
func rulesLabelled(t *testing.T, objs []*unstructured.Unstructured, label string) []rbacv1.PolicyRule {
	t.Helper()
	var out []rbacv1.PolicyRule
	for _, o := range find(objs, "ClusterRole", "") {
		if o.GetLabels()[label] == "true" {
			out = append(out, typed[rbacv1.ClusterRole](t, o).Rules...)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no ClusterRole labelled %s", label)
	}
	return out
}

// allows reports whether rules grant verb on resource (with subresource, as
// "configsets/rollback") in apiGroup, honouring wildcards.
func allows(rules []rbacv1.PolicyRule, apiGroup, resource, verb string) bool {
	for _, r := range rules {
		if len(r.ResourceNames) > 0 {
			continue
		}
		if (slices.Contains(r.APIGroups, apiGroup) || slices.Contains(r.APIGroups, "*")) &&
			(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, "*")) {
			return true
		}
	}
	return false
}

// mentions reports whether any rule names resource or a subresource of it,
// or every resource of apiGroup.
func mentions(rules []rbacv1.PolicyRule, apiGroup, resource string) bool {
	for _, r := range rules {
		if !slices.Contains(r.APIGroups, apiGroup) && !slices.Contains(r.APIGroups, "*") {
			continue
		}
		for _, res := range r.Resources {
			if res == "*" || res == resource || strings.HasPrefix(res, resource+"/") || strings.HasPrefix(res, "*/") {
				return true
			}
		}
	}
	return false
}

var (
	readVerbs  = []string{"get", "list", "watch"}
	writeVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}
)

func TestUserRoles(t *testing.T) {
	_, objs := render(t, deployDir)

	view := rulesLabelled(t, objs, "rbac.authorization.k8s.io/aggregate-to-view")
	t.Run("view", func(t *testing.T) {
		// secretData is in both; Kubernetes keeps Secrets out of view too.
		for _, res := range []string{"configsets", "configrevisions"} {
			if mentions(view, group, res) {
				t.Errorf("a role aggregated into view grants something on %s, whose secretData view must not see", res)
			}
		}
		for _, v := range readVerbs {
			if !allows(view, group, "configpolicies", v) {
				t.Errorf("view cannot %s configpolicies", v)
			}
		}
		for _, v := range writeVerbs {
			if allows(view, group, "configpolicies", v) {
				t.Errorf("view can %s configpolicies", v)
			}
		}
	})

	for _, label := range []string{"rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-admin"} {
		rules := rulesLabelled(t, objs, label)
		t.Run(label, func(t *testing.T) {
			for _, v := range append(slices.Clone(readVerbs), writeVerbs...) {
				if !allows(rules, group, "configsets", v) {
					t.Errorf("cannot %s configsets", v)
				}
			}
			if !allows(rules, group, "configsets/rollback", "create") {
				t.Error("cannot create configsets/rollback")
			}
			if !allows(rules, group, "configsets/status", "get") {
				t.Error("cannot get configsets/status")
			}
			for _, v := range []string{"update", "patch"} {
				if allows(rules, group, "configsets/status", v) {
					t.Errorf("can %s configsets/status, which belongs to the controllers that report through it", v)
				}
			}
			for _, v := range append(slices.Clone(readVerbs), "delete", "deletecollection") {
				if !allows(rules, group, "configrevisions", v) {
					t.Errorf("cannot %s configrevisions", v)
				}
			}
			for _, v := range []string{"create", "update", "patch"} {
				if allows(rules, group, "configrevisions", v) {
					t.Errorf("can %s configrevisions, which only the server writes", v)
				}
			}
			for _, v := range writeVerbs {
				if allows(rules, group, "configpolicies", v) {
					t.Errorf("can %s configpolicies: cluster-wide guardrails must not come with a namespace role", v)
				}
			}
		})
	}

	t.Run("capstan-policy-admin", func(t *testing.T) {
		o := one(t, objs, "ClusterRole", "capstan-policy-admin")
		for l := range o.GetLabels() {
			if strings.HasPrefix(l, "rbac.authorization.k8s.io/aggregate-to-") {
				t.Errorf("aggregates into a built-in role through %s", l)
			}
		}
		rules := typed[rbacv1.ClusterRole](t, o).Rules
		for _, v := range append(slices.Clone(readVerbs), writeVerbs...) {
			if !allows(rules, group, "configpolicies", v) {
				t.Errorf("cannot %s configpolicies", v)
			}
		}
	})
}

func TestCapstanRBAC(t *testing.T) {
	_, objs := render(t, deployDir)
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "capstan", Namespace: namespace}

	bound := func(kind, ns string, roleRef rbacv1.RoleRef) bool {
		for _, o := range find(objs, kind, "") {
			if o.GetNamespace() != ns {
				continue
			}
			var ref rbacv1.RoleRef
			var subjects []rbacv1.Subject
			if kind == "ClusterRoleBinding" {
				b := typed[rbacv1.ClusterRoleBinding](t, o)
				ref, subjects = b.RoleRef, b.Subjects
			} else {
				b := typed[rbacv1.RoleBinding](t, o)
				ref, subjects = b.RoleRef, b.Subjects
			}
			if ref == roleRef && slices.Contains(subjects, sa) {
				return true
			}
		}
		return false
	}
	rbacGroup := rbacv1.GroupName
	if !bound("ClusterRoleBinding", "", rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: "system:auth-delegator"}) {
		t.Error("no ClusterRoleBinding of system:auth-delegator to the capstan service account")
	}
	if !bound("RoleBinding", "kube-system", rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "Role", Name: "extension-apiserver-authentication-reader"}) {
		t.Error("no RoleBinding in kube-system of the extension-apiserver-authentication-reader Role to the capstan service account")
	}
	if !bound("ClusterRoleBinding", "", rbacv1.RoleRef{APIGroup: rbacGroup, Kind: "ClusterRole", Name: "capstan-apiserver"}) {
		t.Error("no ClusterRoleBinding of capstan-apiserver to the capstan service account")
	}

	rules := typed[rbacv1.ClusterRole](t, one(t, objs, "ClusterRole", "capstan-apiserver")).Rules
	informers := map[string][]string{
		"":                             {"namespaces", "resourcequotas"},
		"admissionregistration.k8s.io": {"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "validatingadmissionpolicies", "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"},
		"flowcontrol.apiserver.k8s.io": {"prioritylevelconfigurations", "flowschemas"},
	}
	for g, resources := range informers {
		for _, res := range resources {
			for _, v := range readVerbs {
				if !allows(rules, g, res, v) {
					t.Errorf("capstan-apiserver cannot %s %s.%s; its readiness waits for that informer", v, res, g)
				}
			}
		}
	}
	if !allows(rules, "flowcontrol.apiserver.k8s.io", "flowschemas/status", "patch") {
		t.Error("capstan-apiserver cannot patch flowschemas/status, where priority and fairness applies its Dangling condition")
	}
	if !allows(rules, "", "resourcequotas/status", "update") {
		t.Error("capstan-apiserver cannot update resourcequotas/status, where ResourceQuota admission charges what it admits")
	}
	writes := map[string]string{"patch": "flowschemas/status", "update": "resourcequotas/status"}
	for _, r := range rules {
		for _, v := range r.Verbs {
			if slices.Contains(readVerbs, v) {
				continue
			}
			if res, ok := writes[v]; !ok || !slices.Equal(r.Resources, []string{res}) {
				t.Errorf("capstan-apiserver may %s %v; it only reads, patches FlowSchema status and updates ResourceQuota status", v, r.Resources)
			}
		}
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(data)
	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(gomod))
	if goVersion == nil {
		t.Fatal("no go directive in go.mod")
	}
	for _, want := range []string{
		"golang:" + goVersion[1] + " AS build",
		"go mod download",
		"CGO_ENABLED=0",
		"-trimpath",
		"./cmd/apiserver",
		"FROM gcr.io/distroless/static:nonroot",
		"USER 65532:65532",
	} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if regexp.MustCompile(`-X[ =]k8s\.io/component-base/version`).MatchString(dockerfile) {
		t.Error("Dockerfile sets k8s.io/component-base/version; the apiserver library derives its emulated Kubernetes version from it")
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "pkg"} {
			if line == needed || line == "/"+needed || line == "*" {
				t.Errorf(".dockerignore leaves %s out of the build context", needed)
			}
		}
	}
}
