// Package artifacts tests the deployable manifests in artifacts/: every
// kustomization renders with the real kubectl, the rendered objects are what
// docs/deploy.md promises (checked structurally, and the Deployment's
// arguments against capstan-apiserver's real flags), the Secrets' generator
// script makes certificates that verify, and every manifest passes a
// server-side dry-run against a real kube-apiserver. The Helm chart in
// artifacts/charts/capstan is held to the same objects, and installed,
// upgraded and uninstalled there.
package artifacts

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"capstan.dev/capstan/pkg/util/pki"
	"capstan.dev/capstan/test/utils/kubectl"
	"capstan.dev/capstan/test/utils/repo"
)

// encryptionPlaceholder is the key in artifacts/encryption/encryption-config.yaml
// that an operator (or generate-secrets.sh) replaces.
const encryptionPlaceholder = "REPLACE-WITH-32-RANDOM-BYTES-IN-BASE64"

// Set by TestMain.
var (
	// repoRoot is the checkout.
	repoRoot string
	// workCopy is a copy of artifacts/ in which every file a secretGenerator
	// names exists, so that overlays render without an operator's secrets.
	workCopy string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := repo.Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, "artifacts:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "capstan-artifacts-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "artifacts:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	workCopy = filepath.Join(dir, "artifacts")
	if err := copyArtifacts(filepath.Join(root, "artifacts"), workCopy); err != nil {
		fmt.Fprintln(os.Stderr, "artifacts: copying artifacts/:", err)
		return 1
	}
	if err := fillGeneratorFiles(workCopy); err != nil {
		fmt.Fprintln(os.Stderr, "artifacts:", err)
		return 1
	}
	code := m.Run()
	if err := stopControlPlane(); err != nil {
		fmt.Fprintln(os.Stderr, "artifacts: stopping the control plane:", err)
		code = 1
	}
	return code
}

// copyArtifacts copies artifacts/ to dst, leaving out the secrets/ folders
// that generate-secrets.sh fills in a checkout: the tests use stand-ins, never
// an operator's keys.
func copyArtifacts(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == "secrets" && filepath.Base(filepath.Dir(filepath.Dir(path))) == "overlays":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
}

// requireKubectl returns the real kubectl, or fails the test saying why there is none.
func requireKubectl(t testing.TB) string {
	t.Helper()
	return kubectl.RequireAt(t, kubectl.UsualPath, "these tests render the manifests with the real kubectl (v1.32, built-in kustomize), "+
		"which the machines that run these tests, CI included, provide")
}

// kustomization is one folder of artifacts/ with a kustomization.yaml.
type kustomization struct {
	// Dir is the folder relative to artifacts/, with forward slashes.
	Dir string
	// Component is true for kind: Component, which only overlays can render.
	Component bool
	// Components are the components it uses, relative to artifacts/.
	Components []string
	// GeneratorFiles are the files its secret and ConfigMap generators read,
	// relative to its folder.
	GeneratorFiles []string
}

// kustomizationFile is the part of kustomization.yaml these tests read.
type kustomizationFile struct {
	Kind            string   `json:"kind"`
	Components      []string `json:"components"`
	SecretGenerator []struct {
		Files []string `json:"files"`
	} `json:"secretGenerator"`
	ConfigMapGenerator []struct {
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
}

// findKustomizations lists every kustomization under root (an artifacts/ folder).
func findKustomizations(root string) ([]kustomization, error) {
	var out []kustomization
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "kustomization.yaml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var kf kustomizationFile
		if err := yaml.Unmarshal(data, &kf); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		dir := filepath.Dir(path)
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		k := kustomization{Dir: filepath.ToSlash(rel), Component: kf.Kind == "Component"}
		for _, c := range kf.Components {
			crel, err := filepath.Rel(root, filepath.Join(dir, c))
			if err != nil {
				return err
			}
			k.Components = append(k.Components, filepath.ToSlash(crel))
		}
		var files []string
		for _, g := range kf.SecretGenerator {
			files = append(files, g.Files...)
		}
		for _, g := range kf.ConfigMapGenerator {
			files = append(files, g.Files...)
		}
		for _, f := range files {
			// "key=path" or "path".
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			k.GeneratorFiles = append(k.GeneratorFiles, f)
		}
		out = append(out, k)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Dir < out[j].Dir })
	return out, err
}

// fillGeneratorFiles writes every generator input that an operator would
// make (certificates, keys, the encryption configuration) and that is
// missing, with stand-ins: a certificate-shaped PEM block, and the example
// encryption configuration with a random key.
func fillGeneratorFiles(root string) error {
	ks, err := findKustomizations(root)
	if err != nil {
		return err
	}
	example, err := os.ReadFile(filepath.Join(root, "encryption", "encryption-config.yaml"))
	if err != nil {
		return err
	}
	// One self-signed certificate stands in for every certificate and CA:
	// kube-apiserver warns about kubernetes.io/tls Secrets that do not parse.
	standInCert, standInKey, err := selfSigned()
	if err != nil {
		return err
	}
	for _, k := range ks {
		for _, f := range k.GeneratorFiles {
			path := filepath.Join(root, filepath.FromSlash(k.Dir), f)
			if _, err := os.Stat(path); err == nil {
				continue
			}
			var data []byte
			switch {
			case filepath.Base(f) == "encryption-config.yaml":
				key := make([]byte, 32)
				if _, err := rand.Read(key); err != nil {
					return err
				}
				data = bytes.ReplaceAll(example, []byte(encryptionPlaceholder), []byte(base64.StdEncoding.EncodeToString(key)))
			case strings.HasSuffix(f, ".crt"):
				data = standInCert
			case strings.HasSuffix(f, ".key"):
				data = standInKey
			default:
				return fmt.Errorf("%s/kustomization.yaml generates from %s, which the tests do not know how to stand in for", k.Dir, f)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// selfSigned returns a PEM certificate and its PEM key.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	now := time.Now()
	ca, err := pki.NewAuthority("capstan-artifacts-test", now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = pki.EncodeKeyPEM(ca.Key)
	if err != nil {
		return nil, nil, err
	}
	return ca.CertPEM(), keyPEM, nil
}

// kustomizations returns the kustomizations of the work copy.
func kustomizations(t testing.TB) []kustomization {
	t.Helper()
	ks, err := findKustomizations(workCopy)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) == 0 {
		t.Fatal("no kustomization.yaml under artifacts/")
	}
	return ks
}

// renderable returns the folders kubectl kustomize can render on their own.
func renderable(t testing.TB) []string {
	t.Helper()
	var dirs []string
	for _, k := range kustomizations(t) {
		if !k.Component {
			dirs = append(dirs, k.Dir)
		}
	}
	return dirs
}

// rendering is the output of kubectl kustomize for one folder.
type rendering struct {
	yaml    []byte
	objects []*unstructured.Unstructured
	err     error
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]*rendering{}
)

// render runs kubectl kustomize on a folder of the work copy (relative to
// artifacts/) once and returns its YAML and objects.
func render(t testing.TB, dir string) ([]byte, []*unstructured.Unstructured) {
	t.Helper()
	bin := requireKubectl(t)
	renderMu.Lock()
	defer renderMu.Unlock()
	r, ok := renderCache[dir]
	if !ok {
		r = &rendering{}
		cmd := exec.Command(bin, "kustomize", filepath.Join(workCopy, filepath.FromSlash(dir)))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			r.err = fmt.Errorf("kubectl kustomize artifacts/%s: %w\n%s", dir, err, stderr.String())
		} else {
			r.yaml = out
			r.objects, r.err = decodeObjects(out)
			if r.err != nil {
				r.err = fmt.Errorf("decoding the output of kubectl kustomize artifacts/%s: %w", dir, r.err)
			}
		}
		renderCache[dir] = r
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.yaml, r.objects
}

// decodeObjects splits a YAML stream into objects.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		// Through JSON, so that numbers become int64 as in any object read
		// from an API server, not float64.
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(data)); s == "null" || s == "{}" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
}

// find returns the objects of a kind, optionally with a name.
func find(objs []*unstructured.Unstructured, kind, name string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single object of a kind and name, or fails.
func one(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	found := find(objs, kind, name)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q, found %d", kind, name, len(found))
	}
	return found[0]
}

// usedComponents returns the components that some kustomization uses.
func usedComponents(ks []kustomization) []string {
	var used []string
	for _, k := range ks {
		for _, c := range k.Components {
			if !slices.Contains(used, c) {
				used = append(used, c)
			}
		}
	}
	return used
}
