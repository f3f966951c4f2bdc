package artifacts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	// chartDir is the Helm chart, relative to artifacts/.
	chartDir = "charts/capstan"
	// releaseName is the release the tests render and install.
	releaseName = "capstan"
	// checksumAnnotation is on capstan-apiserver's pod template when the
	// chart writes the EncryptionConfiguration, so that a change rolls it.
	checksumAnnotation = "checksum/encryption-config"
	// keepAnnotation keeps the Namespace, and etcd's claims in it, on helm uninstall.
	keepAnnotation = "helm.sh/resource-policy"
	// encryptionSecret is the Secret with the EncryptionConfiguration.
	encryptionSecret = "capstan-encryption-config"
	// encryptionKey is the key of that Secret capstan-apiserver reads.
	encryptionKey = "encryption-config.yaml"
)

// helmBinary returns helm v4 as hack/build-tools.sh builds it, or fails.
func helmBinary(t testing.TB) string {
	t.Helper()
	path := filepath.Join(repoRoot, "_output", "bin", "helm")
	if info, err := os.Stat(path); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("the chart tests run helm v4 from %s, which hack/build-tools.sh builds; it is missing or not executable: %v", path, err)
	}
	return path
}

// helmRun runs helm with a home of its own (no repositories, plugins,
// cache or kubeconfig of the user's) and returns stdout and stderr.
func helmRun(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBinary(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HELM_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// chartPath is the chart in the work copy of artifacts/.
func chartPath() string {
	return filepath.Join(workCopy, filepath.FromSlash(chartDir))
}

// helmTemplate renders the chart into capstan-system with extra helm
// arguments (values), and returns its objects, or helm's error output.
func helmTemplate(t *testing.T, args ...string) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	stdout, stderr, err := helmRun(t, append([]string{"template", releaseName, chartPath(), "--namespace", namespace}, args...)...)
	if err != nil {
		return nil, stderr, err
	}
	objs, err := decodeObjects([]byte(stdout))
	if err != nil {
		// The manifests may hold keys: say what failed, not what was rendered.
		t.Fatalf("decoding the output of helm template: %v", err)
	}
	return objs, stderr, nil
}

// mustTemplate is helmTemplate that fails the test when helm does.
func mustTemplate(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, stderr, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return objs
}

// valuesFile writes values to a file only the test's user can read, for -f.
func valuesFile(t *testing.T, values map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	// Not in t.TempDir(): helm splits -f at commas, which subtest names have.
	dir, err := os.MkdirTemp("", "capstan-helm-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newKey returns the base64 of n random bytes, an encryption key.
func newKey(t *testing.T, n int) string {
	t.Helper()
	key := make([]byte, n)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}

// secretbox returns encryption.providers with secretbox keys, in order, and identity.
func secretbox(keys ...string) []any {
	var list []any
	for i, k := range keys {
		list = append(list, map[string]any{"name": fmt.Sprintf("key%d", i+1), "secret": k})
	}
	return []any{map[string]any{"secretbox": map[string]any{"keys": list}}, map[string]any{"identity": map[string]any{}}}
}

// encryptionValues returns values that make the chart write the EncryptionConfiguration.
func encryptionValues(providers []any) map[string]any {
	return map[string]any{"encryption": map[string]any{"providers": providers}}
}

// objectKey names an object by kind, namespace and name.
func objectKey(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// secretData returns a Secret's decoded data under key, or fails without
// quoting it.
func secretData(t *testing.T, s *unstructured.Unstructured, key string) []byte {
	t.Helper()
	encoded, _, _ := unstructured.NestedString(s.Object, "data", key)
	data, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(data) == 0 {
		t.Fatalf("Secret %s: data[%s] is missing or not base64", s.GetName(), key)
	}
	return data
}

// normalized is a deep copy of objs in which what is expected to differ
// between the chart and kustomize is made equal, each difference checked
// before it is taken out:
//   - kustomize's secretGenerator names the encryption Secret with a hash of
//     its content, which rolls the Deployment; the chart keeps the name that
//     artifacts/deploy mounts and rolls with checksumAnnotation instead;
//   - the chart keeps the Namespace on uninstall (keepAnnotation);
//   - an APIService's caBundle is compared without line breaks;
//   - the Secret's data is compared parsed, and is taken out (so a diff never
//     prints a key); Secrets, Issuers and Certificates, which the overlays add
//     without labels, carry the chart's labels.
//
// It returns the objects and, for the encryption Secret, the parsed
// EncryptionConfiguration.
func normalized(t *testing.T, objs []*unstructured.Unstructured, fromChart bool) ([]*unstructured.Unstructured, map[string]any) {
	t.Helper()
	var out []*unstructured.Unstructured
	var config map[string]any
	var configSum string
	for _, in := range objs {
		o := in.DeepCopy()
		switch o.GetKind() {
		case "Secret":
			if o.GetName() == encryptionSecret || strings.HasPrefix(o.GetName(), encryptionSecret+"-") {
				data := secretData(t, o, encryptionKey)
				sum := sha256.Sum256(data)
				configSum = hex.EncodeToString(sum[:])
				if err := yaml.Unmarshal(data, &config); err != nil {
					t.Fatalf("Secret %s: %s is not YAML", o.GetName(), encryptionKey)
				}
				o.SetName(encryptionSecret)
				unstructured.RemoveNestedField(o.Object, "data")
			}
			fallthrough
		case "Issuer", "Certificate":
			if fromChart && o.GetLabels()["app.kubernetes.io/part-of"] != "capstan" {
				t.Errorf("%s: no label app.kubernetes.io/part-of=capstan", objectKey(o))
			}
			o.SetLabels(nil)
		case "APIService":
			// kustomize copies a Secret's data as it is, in lines; the chart
			// encodes the PEM in one line. The bytes are the same.
			if bundle, found, _ := unstructured.NestedString(o.Object, "spec", "caBundle"); found {
				unstructured.SetNestedField(o.Object, strings.Join(strings.Fields(bundle), ""), "spec", "caBundle")
			}
		case "Namespace":
			if fromChart {
				if got := o.GetAnnotations()[keepAnnotation]; got != "keep" {
					t.Errorf("Namespace %s: annotation %s=%q, want keep: helm uninstall would delete etcd's claims with it", o.GetName(), keepAnnotation, got)
				}
				unstructured.RemoveNestedField(o.Object, "metadata", "annotations", keepAnnotation)
				if len(o.GetAnnotations()) == 0 {
					unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
				}
			}
		}
		out = append(out, o)
	}
	for _, o := range out {
		if o.GetKind() != "Deployment" || o.GetName() != "capstan-apiserver" {
			continue
		}
		annotations, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations")
		if fromChart {
			if got := annotations[checksumAnnotation]; got != configSum {
				t.Errorf("Deployment capstan-apiserver: pod template annotation %s=%q, want the SHA-256 of the EncryptionConfiguration the chart wrote (%q)",
					checksumAnnotation, got, configSum)
			}
			unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations", checksumAnnotation)
			if len(annotations) == 1 {
				unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations")
			}
		}
		volumes, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
		for _, v := range volumes {
			name, _, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName")
			if strings.HasPrefix(name, encryptionSecret+"-") {
				unstructured.SetNestedField(v.(map[string]any), encryptionSecret, "secret", "secretName")
			}
		}
		if err := unstructured.SetNestedSlice(o.Object, volumes, "spec", "template", "spec", "volumes"); err != nil {
			t.Fatal(err)
		}
	}
	return out, config
}

// sameObjects checks that the chart renders the objects kustomize renders,
// with every field equal.
func sameObjects(t *testing.T, kustomized, charted []*unstructured.Unstructured) {
	t.Helper()
	byKey := map[string]*unstructured.Unstructured{}
	for _, o := range charted {
		byKey[objectKey(o)] = o
	}
	for _, want := range kustomized {
		got, ok := byKey[objectKey(want)]
		if !ok {
			t.Errorf("kustomize renders %s, the chart does not", objectKey(want))
			continue
		}
		delete(byKey, objectKey(want))
		if diff := cmp.Diff(want.Object, got.Object); diff != "" {
			t.Errorf("%s differs (-kustomize +chart):\n%s", objectKey(want), diff)
		}
	}
	for key := range byKey {
		t.Errorf("the chart renders %s, kustomize does not", key)
	}
}

// TestHelmLint runs helm lint --strict over the chart with the default
// values and with values that turn on every other path of the templates.
func TestHelmLint(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"defaults": {},
		"cert-manager, encryption from values": {
			"certificates": map[string]any{"certManager": map[string]any{"enabled": true}},
			"encryption":   map[string]any{"providers": secretbox(newKey(t, 32))},
		},
		"external etcd, caBundle": {
			"etcd":         map[string]any{"external": map[string]any{"enabled": true, "endpoints": []any{"https://etcd.example:2379"}, "clientSecret": "etcd-client"}},
			"certificates": map[string]any{"caBundle": string(standInCA(t))},
		},
	} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, err := helmRun(t, "lint", "--strict", "--namespace", namespace, chartPath(), "-f", valuesFile(t, values))
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, stdout, stderr)
			}
		})
	}
}

// standInCA is the stand-in certificate the example overlay's serving Secret
// carries as ca.crt in the work copy.
func standInCA(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(workCopy, "overlays", "example", "secrets", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// overlayProviders returns the providers of the stand-in
// EncryptionConfiguration an overlay of the work copy generates its Secret from.
func overlayProviders(t *testing.T, overlay string) []any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(workCopy, "overlays", overlay, "secrets", encryptionKey))
	if err != nil {
		t.Fatal(err)
	}
	var config struct {
		Resources []struct {
			Providers []any `json:"providers"`
		} `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &config); err != nil || len(config.Resources) != 1 {
		t.Fatalf("overlays/%s/secrets/%s: want one resources entry (%v)", overlay, encryptionKey, err)
	}
	return config.Resources[0].Providers
}

// TestHelmMatchesKustomize: with the default values the chart renders what
// artifacts/deploy renders, object for object and field for field; with the
// values that stand for an overlay's Secrets and components, it renders what
// the overlay renders, less the certificate Secrets that the operator
// provides (or cert-manager makes).
func TestHelmMatchesKustomize(t *testing.T) {
	t.Run("defaults = deploy", func(t *testing.T) {
		_, kustomized := render(t, deployDir)
		charted, _ := normalized(t, mustTemplate(t), true)
		sameObjects(t, kustomized, charted)
	})

	t.Run("encryption and caBundle from values = overlays/example", func(t *testing.T) {
		_, objs := render(t, "overlays/example")
		var kustomized []*unstructured.Unstructured
		var provided []string
		for _, o := range objs {
			if o.GetKind() == "Secret" && o.Object["type"] == string(corev1.SecretTypeTLS) {
				provided = append(provided, o.GetName())
				continue
			}
			kustomized = append(kustomized, o)
		}
		slices.Sort(provided)
		if want := []string{"capstan-etcd-client", "capstan-etcd-peer", "capstan-etcd-server", servingSecret}; !slices.Equal(provided, want) {
			t.Errorf("the example overlay generates the certificate Secrets %v, want %v", provided, want)
		}
		values := encryptionValues(overlayProviders(t, "example"))
		values["certificates"] = map[string]any{"caBundle": string(standInCA(t))}
		charted := mustTemplate(t, "-f", valuesFile(t, values))
		for _, name := range provided {
			if len(find(charted, "Secret", name)) != 0 {
				t.Errorf("the chart renders Secret %s, which holds a private key and is the operator's to create", name)
			}
		}
		kustomized, wantConfig := normalized(t, kustomized, false)
		charted, gotConfig := normalized(t, charted, true)
		if wantConfig == nil || !reflect.DeepEqual(wantConfig, gotConfig) {
			t.Error("the chart's EncryptionConfiguration differs from the one the example overlay generates from the same providers")
		}
		sameObjects(t, kustomized, charted)
	})

	t.Run("certManager.enabled = overlays/cert-manager", func(t *testing.T) {
		_, kustomized := render(t, "overlays/cert-manager")
		values := encryptionValues(overlayProviders(t, "cert-manager"))
		values["certificates"] = map[string]any{"certManager": map[string]any{"enabled": true}}
		kustomized, wantConfig := normalized(t, kustomized, false)
		charted, gotConfig := normalized(t, mustTemplate(t, "-f", valuesFile(t, values)), true)
		if wantConfig == nil || !reflect.DeepEqual(wantConfig, gotConfig) {
			t.Error("the chart's EncryptionConfiguration differs from the one the cert-manager overlay generates from the same providers")
		}
		sameObjects(t, kustomized, charted)
	})
}

// containerOf returns the only container of a Deployment or StatefulSet,
// strictly decoded.
func containerOf(t *testing.T, objs []*unstructured.Unstructured, kind, name string) (corev1.PodSpec, corev1.Container) {
	t.Helper()
	var pod corev1.PodSpec
	switch kind {
	case "Deployment":
		pod = typed[appsv1.Deployment](t, one(t, objs, kind, name)).Spec.Template.Spec
	case "StatefulSet":
		pod = typed[appsv1.StatefulSet](t, one(t, objs, kind, name)).Spec.Template.Spec
	default:
		t.Fatalf("no pod template in a %s", kind)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s %s: want one container, got %d", kind, name, len(pod.Containers))
	}
	return pod, pod.Containers[0]
}

// TestHelmValues renders the chart with each value set and checks that it
// lands where it should.
func TestHelmValues(t *testing.T) {
	t.Run("replicas, resources, image, extraArgs", func(t *testing.T) {
		objs := mustTemplate(t, "-f", valuesFile(t, map[string]any{
			"image": map[string]any{"repository": "my.registry/capstan", "tag": "v9.9.9", "pullPolicy": "Always"},
			"apiserver": map[string]any{
				"replicas":  3,
				"resources": map[string]any{"requests": map[string]any{"cpu": "250m", "memory": "512Mi"}, "limits": map[string]any{"memory": "3Gi"}},
				"extraArgs": []any{"--disable-admission-plugins=MutatingAdmissionPolicy"},
			},
			"controllerManager": map[string]any{
				"replicas": 1,
				// null takes a default out: Helm merges maps with the defaults.
				"resources": map[string]any{"requests": nil, "limits": map[string]any{"cpu": "500m", "memory": "256Mi"}},
				"extraArgs": []any{"--v=4"},
			},
		}))
		api := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-apiserver"))
		if api.Spec.Replicas == nil || *api.Spec.Replicas != 3 {
			t.Errorf("capstan-apiserver replicas %v, want 3", api.Spec.Replicas)
		}
		_, c := containerOf(t, objs, "Deployment", "capstan-apiserver")
		want := corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
			// The default CPU limit stays.
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("3Gi")},
		}
		if !equalResources(c.Resources, want) {
			t.Errorf("capstan-apiserver resources %v, want %v", c.Resources, want)
		}
		if c.Image != "my.registry/capstan:v9.9.9" || c.ImagePullPolicy != corev1.PullAlways {
			t.Errorf("capstan-apiserver image %s (%s), want my.registry/capstan:v9.9.9 (Always)", c.Image, c.ImagePullPolicy)
		}
		if last := c.Args[len(c.Args)-1]; last != "--disable-admission-plugins=MutatingAdmissionPolicy" {
			t.Errorf("capstan-apiserver's last argument is %q, want the extra one", last)
		}
		if o := parsedArgs(t, c.Args); !slices.Contains(o.Recommended.Admission.DisablePlugins, "MutatingAdmissionPolicy") {
			t.Errorf("capstan-apiserver does not disable MutatingAdmissionPolicy with %v", c.Args)
		}
		if len(find(objs, "PodDisruptionBudget", "capstan-apiserver")) != 1 {
			t.Error("no PodDisruptionBudget for capstan-apiserver's 3 replicas")
		}

		cm := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-controller-manager"))
		if cm.Spec.Replicas == nil || *cm.Spec.Replicas != 1 {
			t.Errorf("capstan-controller-manager replicas %v, want 1", cm.Spec.Replicas)
		}
		_, c = containerOf(t, objs, "Deployment", "capstan-controller-manager")
		want = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}}
		if !equalResources(c.Resources, want) {
			t.Errorf("capstan-controller-manager resources %v, want %v", c.Resources, want)
		}
		if c.Image != "my.registry/capstan:v9.9.9" {
			t.Errorf("capstan-controller-manager image %s, want the apiserver's", c.Image)
		}
		if last := c.Args[len(c.Args)-1]; last != "--v=4" {
			t.Errorf("capstan-controller-manager's last argument is %q, want the extra one", last)
		}
		parsedControllerManagerArgs(t, c.Args)
		// With one replica a PodDisruptionBudget of minAvailable 1 would
		// block every node drain.
		if len(find(objs, "PodDisruptionBudget", "capstan-controller-manager")) != 0 {
			t.Error("a PodDisruptionBudget for a single capstan-controller-manager replica")
		}
	})

	t.Run("bundled etcd: replicas, image, storage", func(t *testing.T) {
		objs := mustTemplate(t, "-f", valuesFile(t, map[string]any{"etcd": map[string]any{
			"replicas":  5,
			"image":     map[string]any{"repository": "my.registry/etcd", "tag": "3.6.9-0"},
			"resources": map[string]any{"limits": map[string]any{"memory": "4Gi"}},
			"storage":   map[string]any{"size": "20Gi", "storageClassName": "fast-ssd"},
		}}))
		s := typed[appsv1.StatefulSet](t, one(t, objs, "StatefulSet", "capstan-etcd"))
		if s.Spec.Replicas == nil || *s.Spec.Replicas != 5 {
			t.Fatalf("replicas %v, want 5", s.Spec.Replicas)
		}
		_, c := containerOf(t, objs, "StatefulSet", "capstan-etcd")
		if c.Image != "my.registry/etcd:3.6.9-0" {
			t.Errorf("image %s, want my.registry/etcd:3.6.9-0", c.Image)
		}
		if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("4Gi")) != 0 {
			t.Errorf("memory limit %v, want 4Gi", c.Resources.Limits)
		}
		var members, clientURLs []string
		for i := range 5 {
			host := fmt.Sprintf("capstan-etcd-%d.capstan-etcd.%s.svc", i, namespace)
			members = append(members, fmt.Sprintf("capstan-etcd-%d=https://%s:2380", i, host))
			clientURLs = append(clientURLs, "https://"+host+":2379")
		}
		if got := flagValues(c.Args)["initial-cluster"]; got != strings.Join(members, ",") {
			t.Errorf("--initial-cluster=%s, want the 5 members %s", got, strings.Join(members, ","))
		}
		_, api := containerOf(t, objs, "Deployment", "capstan-apiserver")
		if got := parsedArgs(t, api.Args).Recommended.Etcd.StorageConfig.Transport.ServerList; !slices.Equal(got, clientURLs) {
			t.Errorf("capstan-apiserver --etcd-servers %v, want %v", got, clientURLs)
		}
		pdb := typed[policyv1.PodDisruptionBudget](t, one(t, objs, "PodDisruptionBudget", "capstan-etcd"))
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 3 {
			t.Errorf("PodDisruptionBudget minAvailable %v, want 3, the quorum of 5", pdb.Spec.MinAvailable)
		}
		claim := s.Spec.VolumeClaimTemplates[0].Spec
		if got := claim.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse("20Gi")) != 0 {
			t.Errorf("claims request %v, want 20Gi", claim.Resources.Requests)
		}
		if claim.StorageClassName == nil || *claim.StorageClassName != "fast-ssd" {
			t.Errorf("claims' storageClassName %v, want fast-ssd", claim.StorageClassName)
		}
	})

	t.Run("external etcd", func(t *testing.T) {
		endpoints := []string{"https://etcd-a.example:2379", "https://etcd-b.example:2379", "https://etcd-c.example:2379"}
		for _, certManager := range []bool{false, true} {
			t.Run(fmt.Sprintf("certManager=%v", certManager), func(t *testing.T) {
				objs := mustTemplate(t, "-f", valuesFile(t, map[string]any{
					"etcd":         map[string]any{"external": map[string]any{"enabled": true, "endpoints": endpoints, "clientSecret": "my-etcd-client"}},
					"certificates": map[string]any{"certManager": map[string]any{"enabled": certManager}},
				}))
				for _, o := range objs {
					if strings.HasPrefix(o.GetName(), "capstan-etcd") {
						t.Errorf("%s is rendered with an external etcd", objectKey(o))
					}
				}
				pod, c := containerOf(t, objs, "Deployment", "capstan-apiserver")
				o := parsedArgs(t, c.Args)
				if got := o.Recommended.Etcd.StorageConfig.Transport.ServerList; !slices.Equal(got, endpoints) {
					t.Errorf("--etcd-servers %v, want %v", got, endpoints)
				}
				for _, flag := range []string{"--etcd-cafile", "--etcd-certfile", "--etcd-keyfile"} {
					if secret, _ := mountedKey(t, pod, c, capstanFiles(o)[flag]); secret != "my-etcd-client" {
						t.Errorf("%s comes from Secret %s, want etcd.external.clientSecret my-etcd-client", flag, secret)
					}
				}
				if certManager {
					var names []string
					for _, o := range append(find(objs, "Certificate", ""), find(objs, "Issuer", "")...) {
						names = append(names, o.GetKind()+"/"+o.GetName())
					}
					slices.Sort(names)
					want := []string{"Certificate/capstan-ca", "Certificate/capstan-serving-cert", "Issuer/capstan-ca", "Issuer/capstan-selfsigned"}
					if !slices.Equal(names, want) {
						t.Errorf("cert-manager objects %v, want only the serving certificate's %v", names, want)
					}
				}
			})
		}
	})

	t.Run("cert-manager", func(t *testing.T) {
		objs := mustTemplate(t, "--set", "certificates.certManager.enabled=true")
		certs := map[string]bool{}
		for _, c := range find(objs, "Certificate", "") {
			name, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
			certs[name] = true
		}
		// Every Secret a pod mounts, but the encryption configuration's.
		for _, kind := range []string{"Deployment", "StatefulSet"} {
			for _, o := range find(objs, kind, "") {
				pod, _ := containerOf(t, objs, kind, o.GetName())
				for _, v := range pod.Volumes {
					if v.Secret != nil && v.Secret.SecretName != encryptionSecret && !certs[v.Secret.SecretName] {
						t.Errorf("%s %s mounts Secret %s, which no Certificate makes", kind, o.GetName(), v.Secret.SecretName)
					}
				}
			}
		}
		for _, a := range find(objs, "APIService", "") {
			if got := a.GetAnnotations()[injectAnnotation]; got != namespace+"/"+servingSecret {
				t.Errorf("APIService %s: %s=%q, want %s/%s", a.GetName(), injectAnnotation, got, namespace, servingSecret)
			}
			if _, found, _ := unstructured.NestedFieldNoCopy(a.Object, "spec", "caBundle"); found {
				t.Errorf("APIService %s has a caBundle; cainjector owns it", a.GetName())
			}
		}
		if len(find(objs, "Issuer", "capstan-selfsigned")) != 1 {
			t.Error("no self-signed Issuer for the CAs")
		}
	})

	t.Run("caBundle", func(t *testing.T) {
		ca := standInCA(t)
		objs := mustTemplate(t, "--set-file", "certificates.caBundle="+filepath.Join(workCopy, "overlays", "example", "secrets", "ca.crt"))
		for _, a := range find(objs, "APIService", "") {
			got, _, _ := unstructured.NestedString(a.Object, "spec", "caBundle")
			if got != base64.StdEncoding.EncodeToString(ca) {
				t.Errorf("APIService %s: caBundle is not the base64 of the given PEM", a.GetName())
			}
			if len(a.GetAnnotations()) != 0 {
				t.Errorf("APIService %s: annotations %v without cert-manager", a.GetName(), a.GetAnnotations())
			}
		}
	})

	t.Run("encryption", func(t *testing.T) {
		t.Run("existing Secret", func(t *testing.T) {
			objs := mustTemplate(t, "--set", "encryption.secretName=my-encryption")
			if len(find(objs, "Secret", "")) != 0 {
				t.Error("the chart renders a Secret without encryption.providers")
			}
			pod, c := containerOf(t, objs, "Deployment", "capstan-apiserver")
			if secret, key := mountedKey(t, pod, c, capstanFiles(parsedArgs(t, c.Args))["--encryption-provider-config"]); secret != "my-encryption" || key != encryptionKey {
				t.Errorf("--encryption-provider-config reads %s of Secret %s, want %s of my-encryption", key, secret, encryptionKey)
			}
		})
		t.Run("from providers", func(t *testing.T) {
			checksum := func(objs []*unstructured.Unstructured) string {
				d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-apiserver"))
				return d.Spec.Template.Annotations[checksumAnnotation]
			}
			key1, key2 := newKey(t, 32), newKey(t, 32)
			objs := mustTemplate(t, "-f", valuesFile(t, encryptionValues(secretbox(key1))))
			path := filepath.Join(t.TempDir(), encryptionKey)
			if err := os.WriteFile(path, secretData(t, one(t, objs, "Secret", encryptionSecret), encryptionKey), 0o600); err != nil {
				t.Fatal(err)
			}
			// k8s.io/apiserver loads it, and it encrypts what it must.
			checkEncrypts(t, path)
			pod, c := containerOf(t, objs, "Deployment", "capstan-apiserver")
			if secret, _ := mountedKey(t, pod, c, capstanFiles(parsedArgs(t, c.Args))["--encryption-provider-config"]); secret != encryptionSecret {
				t.Errorf("--encryption-provider-config comes from Secret %s, want the chart's %s", secret, encryptionSecret)
			}
			// A second key (rotation, step 1) changes the checksum, which rolls the Deployment.
			rotated := mustTemplate(t, "-f", valuesFile(t, encryptionValues(secretbox(key1, key2))))
			if checksum(objs) == "" || checksum(objs) == checksum(rotated) {
				t.Errorf("the pod template's %s does not change with the EncryptionConfiguration", checksumAnnotation)
			}

			// aesgcm, aescbc and a KMS v2 plugin load as well.
			objs = mustTemplate(t, "-f", valuesFile(t, encryptionValues([]any{
				map[string]any{"kms": map[string]any{"apiVersion": "v2", "name": "capstan-kms", "endpoint": "unix:///var/run/kmsplugin/socket.sock", "timeout": "3s"}},
				map[string]any{"aesgcm": map[string]any{"keys": []any{map[string]any{"name": "k16", "secret": newKey(t, 16)}, map[string]any{"name": "k24", "secret": newKey(t, 24)}}}},
				map[string]any{"aescbc": map[string]any{"keys": []any{map[string]any{"name": "k32", "secret": newKey(t, 32)}}}},
				map[string]any{"identity": map[string]any{}},
			})))
			var config struct {
				Resources []struct {
					Resources []string         `json:"resources"`
					Providers []map[string]any `json:"providers"`
				} `json:"resources"`
			}
			if err := yaml.Unmarshal(secretData(t, one(t, objs, "Secret", encryptionSecret), encryptionKey), &config); err != nil || len(config.Resources) != 1 {
				t.Fatalf("the EncryptionConfiguration does not parse as one resources entry (%v)", err)
			}
			var kinds []string
			for _, p := range config.Resources[0].Providers {
				for k := range p {
					kinds = append(kinds, k)
				}
			}
			if !slices.Equal(kinds, []string{"kms", "aesgcm", "aescbc", "identity"}) {
				t.Errorf("providers %v, want kms, aesgcm, aescbc, identity in that order", kinds)
			}
			if want := []string{"configsets.config.capstan.dev", "configrevisions.config.capstan.dev"}; !slices.Equal(config.Resources[0].Resources, want) {
				t.Errorf("encrypted resources %v, want %v", config.Resources[0].Resources, want)
			}
		})
	})

	t.Run("namespace.create=false", func(t *testing.T) {
		objs := mustTemplate(t, "--set", "namespace.create=false")
		if len(find(objs, "Namespace", "")) != 0 {
			t.Error("the Namespace is rendered with namespace.create=false")
		}
		if len(find(objs, "Deployment", "")) != 2 {
			t.Error("the Deployments are not rendered")
		}
	})

	t.Run("NOTES", func(t *testing.T) {
		notes := func(t *testing.T, values map[string]any) string {
			t.Helper()
			stdout, stderr, err := helmRun(t, "install", releaseName, chartPath(), "--namespace", namespace, "--dry-run=client", "-f", valuesFile(t, values))
			if err != nil {
				t.Fatalf("helm install --dry-run=client: %v\n%s", err, stderr)
			}
			_, n, ok := strings.Cut(stdout, "\nNOTES:\n")
			if !ok {
				t.Fatal("helm install --dry-run=client prints no NOTES")
			}
			return n
		}
		n := notes(t, map[string]any{})
		for _, want := range []string{"placeholder caBundle", servingSecret, "capstan-etcd-client", encryptionSecret + " (encryption-config.yaml)"} {
			if !strings.Contains(n, want) {
				t.Errorf("NOTES with the defaults do not mention %q", want)
			}
		}
		key := newKey(t, 32)
		values := encryptionValues(secretbox(key))
		values["certificates"] = map[string]any{"certManager": map[string]any{"enabled": true}}
		n = notes(t, values)
		if strings.Contains(n, key) {
			t.Error("NOTES quote the encryption key")
		}
		for _, unwanted := range []string{"placeholder caBundle", "capstan-etcd-client", encryptionSecret + " (encryption-config.yaml)"} {
			if strings.Contains(n, unwanted) {
				t.Errorf("NOTES with cert-manager and the encryption providers still mention %q", unwanted)
			}
		}
	})
}

// equalResources compares resource requirements by quantity.
func equalResources(a, b corev1.ResourceRequirements) bool {
	same := func(x, y corev1.ResourceList) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || v.Cmp(w) != 0 {
				return false
			}
		}
		return true
	}
	return same(a.Requests, b.Requests) && same(a.Limits, b.Limits)
}

// TestHelmRefusesInvalidValues: values the chart cannot deploy are refused,
// by values.schema.json or by a check in the templates, with a message that
// names the value and never quotes a key.
func TestHelmRefusesInvalidValues(t *testing.T) {
	shortKey := newKey(t, 16)
	for _, tc := range []struct {
		name   string
		args   []string
		values map[string]any
		want   []string
	}{
		{name: "negative replicas", args: []string{"--set", "apiserver.replicas=-1"}, want: []string{"/apiserver/replicas", "minimum"}},
		{name: "replicas as text", args: []string{"--set-string", "controllerManager.replicas=two"}, want: []string{"/controllerManager/replicas", "integer"}},
		{name: "misspelt value", args: []string{"--set", "apiserver.replica=3"}, want: []string{"/apiserver", "replica"}},
		{name: "unknown top-level value", args: []string{"--set", "replicas=3"}, want: []string{"additional properties 'replicas'"}},
		{name: "resource quantity", args: []string{"--set", "apiserver.resources.limits.memory=lots"}, want: []string{"/apiserver/resources/limits/memory"}},
		{name: "pull policy", args: []string{"--set", "image.pullPolicy=Sometimes"}, want: []string{"/image/pullPolicy"}},
		{name: "extra argument without --", args: []string{"--set", "apiserver.extraArgs[0]=v=4"}, want: []string{"/apiserver/extraArgs/0"}},
		{name: "even etcd members", args: []string{"--set", "etcd.replicas=4"}, want: []string{"/etcd/replicas"}},
		{name: "external etcd without endpoints", args: []string{"--set", "etcd.external.enabled=true", "--set", "etcd.external.clientSecret=c"},
			want: []string{"/etcd/external/endpoints", "minItems"}},
		{name: "external etcd without client Secret", args: []string{"--set", "etcd.external.enabled=true", "--set", "etcd.external.endpoints[0]=https://etcd:2379"},
			want: []string{"/etcd/external/clientSecret"}},
		{name: "external etcd over plain HTTP", args: []string{"--set", "etcd.external.enabled=true", "--set", "etcd.external.endpoints[0]=http://etcd:2379", "--set", "etcd.external.clientSecret=c"},
			want: []string{"/etcd/external/endpoints/0"}},
		{name: "two providers in one item", values: encryptionValues([]any{map[string]any{"identity": map[string]any{}, "secretbox": map[string]any{"keys": []any{map[string]any{"name": "k", "secret": newKey(t, 32)}}}}}),
			want: []string{"/encryption/providers/0", "maxProperties"}},
		{name: "unknown provider", values: encryptionValues([]any{map[string]any{"rot13": map[string]any{}}}), want: []string{"/encryption/providers/0", "rot13"}},
		{name: "KMS v1", values: encryptionValues([]any{map[string]any{"kms": map[string]any{"apiVersion": "v1", "name": "k", "endpoint": "unix:///kms.sock"}}}),
			want: []string{"/encryption/providers/0/kms/apiVersion"}},
		{name: "wrong namespace", args: []string{"--namespace", "default"}, want: []string{"must be installed into the namespace capstan-system", `not "default"`}},
		{name: "caBundle not PEM", args: []string{"--set", "certificates.caBundle=" + base64.StdEncoding.EncodeToString(standInCA(t))}, want: []string{"certificates.caBundle must be a PEM certificate"}},
		{name: "caBundle with cert-manager", args: []string{"--set", "certificates.certManager.enabled=true", "--set-file", "certificates.caBundle=" + filepath.Join(workCopy, "overlays", "example", "secrets", "ca.crt")},
			want: []string{"certificates.caBundle must be empty with certificates.certManager.enabled"}},
		{name: "placeholder key", values: encryptionValues(secretbox(encryptionPlaceholder)), want: []string{"encryption.providers[0].secretbox.keys[0] (key1)", "base64 of 32 random bytes"}},
		{name: "16-byte secretbox key", values: encryptionValues(secretbox(shortKey)), want: []string{"encryption.providers[0].secretbox.keys[0] (key1)", "base64 of 32 random bytes"}},
		{name: "identity first", values: encryptionValues([]any{map[string]any{"identity": map[string]any{}}, secretbox(newKey(t, 32))[0]}), want: []string{"must not be identity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.values != nil {
				args = append(args, "-f", valuesFile(t, tc.values))
			}
			_, stderr, err := helmTemplate(t, args...)
			if err == nil {
				t.Fatal("helm template accepts the values")
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("the error does not say %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, shortKey) {
				t.Error("the error quotes the key")
			}
		})
	}
}

// TestHelmServerSideDryRun applies what the chart renders with each path of
// its values to a real kube-apiserver with --dry-run=server, as
// TestArtifactsServerSideDryRun does for kustomize, and dry-runs its pod
// templates under the restricted Pod Security Standard.
func TestHelmServerSideDryRun(t *testing.T) {
	requireKubectl(t)
	kubeconfig := adminKubeconfig(t)
	for name, values := range map[string]map[string]any{
		"defaults": {},
		"encryption, caBundle, replicas, resources": {
			"encryption":   map[string]any{"providers": secretbox(newKey(t, 32))},
			"certificates": map[string]any{"caBundle": string(standInCA(t))},
			"apiserver":    map[string]any{"replicas": 3, "resources": map[string]any{"limits": map[string]any{"memory": "2Gi"}}, "extraArgs": []any{"--v=2"}},
			"etcd":         map[string]any{"replicas": 5, "storage": map[string]any{"size": "1Gi", "storageClassName": "standard"}},
		},
		"cert-manager, external etcd": {
			"certificates": map[string]any{"certManager": map[string]any{"enabled": true}},
			"etcd":         map[string]any{"external": map[string]any{"enabled": true, "endpoints": []any{"https://etcd.example:2379"}, "clientSecret": "etcd-client"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			objs := mustTemplate(t, "-f", valuesFile(t, values))
			dryRun(t, kubeconfig, objs)
			if len(find(objs, "StatefulSet", "")) == 1 {
				dryRunPodTemplates(t, kubeconfig, objs)
			}
		})
	}
}

// liveObjects returns the objects of objs that exist in the cluster, by objectKey.
func liveObjects(t *testing.T, kubeconfig string, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	byNamespace := map[string][]string{}
	for _, o := range objs {
		byNamespace[o.GetNamespace()] = append(byNamespace[o.GetNamespace()], kubectlName(o))
	}
	out := map[string]*unstructured.Unstructured{}
	for ns, names := range byNamespace {
		args := append([]string{"get", "--ignore-not-found", "-o", "json"}, names...)
		if ns != "" {
			args = append(args, "--namespace="+ns)
		}
		stdout, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), "", args...)
		if err != nil {
			t.Fatalf("kubectl get: %v\n%s", err, stderr)
		}
		if strings.TrimSpace(stdout) == "" {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("kubectl get -o json: %v", err)
		}
		// One object comes back as itself, several as a List.
		items := []any{got}
		if got["kind"] == "List" {
			items, _ = got["items"].([]any)
		}
		for _, item := range items {
			o := &unstructured.Unstructured{Object: item.(map[string]any)}
			out[objectKey(o)] = o
		}
	}
	return out
}

// removeObjects deletes every object of objs that exists, and waits until
// they are gone: the APIServices first, so that no group in discovery is
// left without its Service while the namespace is deleted. The local
// control plane runs no PVC protection controller, so the claims etcd's
// StatefulSet made lose their finalizer first.
func removeObjects(t *testing.T, kubeconfig string, objs []*unstructured.Unstructured) {
	t.Helper()
	var apiServices, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "APIService" {
			apiServices = append(apiServices, o)
		} else {
			rest = append(rest, o)
		}
	}
	del := func(objs []*unstructured.Unstructured) {
		t.Helper()
		if stdout, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), string(encodeYAML(t, anys(objs))),
			"delete", "--ignore-not-found", "--wait=true", "--timeout=2m", "-f", "-"); err != nil {
			t.Fatalf("kubectl delete: %v\n%s%s", err, stdout, stderr)
		}
	}
	del(apiServices)
	stdout, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), "", "get", "persistentvolumeclaims", "--namespace="+namespace, "-o", "name")
	if err != nil {
		t.Fatalf("kubectl get persistentvolumeclaims: %v\n%s", err, stderr)
	}
	for _, pvc := range strings.Fields(stdout) {
		if _, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), "", "patch", pvc, "--namespace="+namespace, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`); err != nil {
			t.Fatalf("removing the finalizers of %s: %v\n%s", pvc, err, stderr)
		}
	}
	del(rest)
}

// TestHelmInstallUpgradeUninstall installs the chart into the package's
// control plane, upgrades it with other values and uninstalls it, checking
// the API objects at each step (no kubelet runs: Pods are never scheduled).
//
// The control plane's harness made some of the chart's objects for its own
// Capstan (the namespace, the Service, the RBAC, the APIServices), and an
// install must not find them, so the test deletes every object the chart
// renders first, and all of them but the namespace at the end. It never runs
// against a cluster that kubeconfigEnv names.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	requireKubectl(t)
	c := controlPlane(t)
	kubeconfig := c.AdminKubeconfig
	ca, err := os.ReadFile(c.CapstanCAFile)
	if err != nil {
		t.Fatal(err)
	}
	key1, key2 := newKey(t, 32), newKey(t, 32)
	values := func(replicas int, memory string, keys ...string) string {
		return valuesFile(t, map[string]any{
			"encryption":   map[string]any{"providers": secretbox(keys...)},
			"certificates": map[string]any{"caBundle": string(ca)},
			"apiserver":    map[string]any{"replicas": replicas, "resources": map[string]any{"limits": map[string]any{"cpu": "2", "memory": memory}}},
		})
	}
	installValues := values(2, "1Gi", key1)
	objs := mustTemplate(t, "-f", installValues)
	removeObjects(t, kubeconfig, objs)
	// Whatever a failed step left behind goes too, except the namespace,
	// whose deletion takes seconds: the next install deletes it first.
	var allButNamespace []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != "Namespace" {
			allButNamespace = append(allButNamespace, o)
		}
	}
	t.Cleanup(func() { removeObjects(t, kubeconfig, allButNamespace) })

	// secrets are what must never be printed: the keys, and the Secret's data.
	secrets := []string{key1, key2}
	for _, s := range find(objs, "Secret", "") {
		encoded, _, _ := unstructured.NestedString(s.Object, "data", encryptionKey)
		secrets = append(secrets, encoded)
	}
	helmIn := func(args ...string) string {
		t.Helper()
		args = append(args, "--namespace", namespace, "--kubeconfig", kubeconfig)
		stdout, stderr, err := helmRun(t, args...)
		for _, s := range secrets {
			if strings.Contains(stdout+stderr, s) {
				t.Fatalf("helm %s prints a key or the encryption Secret's data", args[0])
			}
		}
		if err != nil {
			t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
		}
		return stdout
	}
	apiserver := func(t *testing.T) *appsv1.Deployment {
		t.Helper()
		live := liveObjects(t, kubeconfig, find(objs, "Deployment", "capstan-apiserver"))
		d, ok := live["Deployment "+namespace+"/capstan-apiserver"]
		if !ok {
			t.Fatal("Deployment capstan-apiserver does not exist")
		}
		return typed[appsv1.Deployment](t, d)
	}
	release := func(t *testing.T) (revision int, status string) {
		t.Helper()
		var list []struct {
			Name     string `json:"name"`
			Revision string `json:"revision"`
			Status   string `json:"status"`
		}
		if err := json.Unmarshal([]byte(helmIn("list", "--output", "json")), &list); err != nil {
			t.Fatalf("helm list --output json: %v", err)
		}
		for _, r := range list {
			if r.Name == releaseName {
				fmt.Sscan(r.Revision, &revision)
				return revision, r.Status
			}
		}
		return 0, ""
	}

	t.Run("install", func(t *testing.T) {
		// helm waits for nothing (hookOnly): no kubelet makes Pods ready.
		notes := helmIn("install", releaseName, chartPath(), "--create-namespace", "--wait=hookOnly", "-f", installValues)
		if !strings.Contains(notes, "The chart wrote the EncryptionConfiguration into the Secret "+encryptionSecret) {
			t.Error("the install's NOTES do not say where the EncryptionConfiguration is")
		}
		live := liveObjects(t, kubeconfig, objs)
		for _, o := range objs {
			l, ok := live[objectKey(o)]
			if !ok {
				t.Errorf("%s was not created", objectKey(o))
				continue
			}
			if l.GetAnnotations()["meta.helm.sh/release-name"] != releaseName || l.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
				t.Errorf("%s does not belong to the release %s", objectKey(o), releaseName)
			}
		}
		for _, a := range find(objs, "APIService", "") {
			l, ok := live[objectKey(a)]
			if !ok {
				continue
			}
			got, _, _ := unstructured.NestedString(l.Object, "spec", "caBundle")
			if got != base64.StdEncoding.EncodeToString(ca) {
				t.Errorf("APIService %s: the caBundle is not the CA given in certificates.caBundle", a.GetName())
			}
		}
		d := apiserver(t)
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			t.Errorf("capstan-apiserver replicas %v, want 2", d.Spec.Replicas)
		}
		if revision, status := release(t); revision != 1 || status != "deployed" {
			t.Errorf("release revision %d %q, want 1 deployed", revision, status)
		}
		// The StatefulSet controller makes the claims of etcd's members.
		if _, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), "", "wait", "--for=create", "--timeout=60s",
			"--namespace="+namespace, "persistentvolumeclaim/data-capstan-etcd-0"); err != nil {
			t.Fatalf("etcd's first claim was not created: %v\n%s", err, stderr)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		before := apiserver(t)
		// Three replicas, a larger memory limit, and a second key.
		helmIn("upgrade", releaseName, chartPath(), "--wait=hookOnly", "-f", values(3, "2Gi", key1, key2))
		after := apiserver(t)
		if after.Spec.Replicas == nil || *after.Spec.Replicas != 3 {
			t.Errorf("capstan-apiserver replicas %v after the upgrade, want 3", after.Spec.Replicas)
		}
		if got := after.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("2Gi")) != 0 {
			t.Errorf("capstan-apiserver memory limit %s after the upgrade, want 2Gi", got.String())
		}
		if after.Generation <= before.Generation {
			t.Errorf("capstan-apiserver generation %d after the upgrade, was %d", after.Generation, before.Generation)
		}
		was, now := before.Spec.Template.Annotations[checksumAnnotation], after.Spec.Template.Annotations[checksumAnnotation]
		if was == "" || was == now {
			t.Errorf("the pod template's %s did not change with the second key, so the pods would keep the old configuration", checksumAnnotation)
		}
		if revision, status := release(t); revision != 2 || status != "deployed" {
			t.Errorf("release revision %d %q, want 2 deployed", revision, status)
		}
	})

	t.Run("uninstall", func(t *testing.T) {
		// --wait: helm returns once what it deleted is gone.
		helmIn("uninstall", releaseName, "--wait", "--timeout=2m")
		live := liveObjects(t, kubeconfig, objs)
		for _, o := range objs {
			_, exists := live[objectKey(o)]
			if o.GetKind() == "Namespace" {
				if !exists {
					t.Errorf("%s was deleted, and etcd's claims with it", objectKey(o))
				}
				continue
			}
			if exists {
				t.Errorf("%s still exists after helm uninstall", objectKey(o))
			}
		}
		if stdout, stderr, err := kubectlFor(t, kubeconfig).Exec(context.Background(), "", "get", "--namespace="+namespace,
			"persistentvolumeclaim/data-capstan-etcd-0", "-o", "name"); err != nil || strings.TrimSpace(stdout) == "" {
			t.Errorf("etcd's claim, Capstan's data, is gone after helm uninstall: %v\n%s", err, stderr)
		}
		if revision, _ := release(t); revision != 0 {
			t.Errorf("the release is still listed, at revision %d", revision)
		}
	})

	t.Run("install again", func(t *testing.T) {
		// The kept namespace still names the release, which takes it back.
		helmIn("install", releaseName, chartPath(), "--create-namespace", "--wait=hookOnly", "-f", installValues)
		if revision, status := release(t); revision != 1 || status != "deployed" {
			t.Errorf("release revision %d %q, want 1 deployed", revision, status)
		}
		live := liveObjects(t, kubeconfig, objs)
		for _, o := range objs {
			if _, ok := live[objectKey(o)]; !ok {
				t.Errorf("%s was not created again", objectKey(o))
			}
		}
		helmIn("uninstall", releaseName, "--wait", "--timeout=2m")
	})
}
