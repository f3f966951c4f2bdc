package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

var apiServiceResource = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

func apiServiceNames() []string {
	names := make([]string, len(Versions))
	for i, v := range Versions {
		names[i] = v + "." + Group
	}
	return names
}

// builtinRBAC is what Capstan's identity needs before it starts, used when
// Options.RBACFiles is empty; artifacts/rbac holds the deployable equivalent.
// Delegated authentication and authorization, the front-proxy and client CAs
// from kube-system, and the informers of its admission chain
// (NamespaceLifecycle, ResourceQuota, webhooks, admission policies,
// ConfigPolicy's namespaceSelector) and of API Priority and Fairness: without any of them
// its readiness check never passes.
const builtinRBAC = `
apiVersion: v1
kind: ServiceAccount
metadata: {name: capstan, namespace: capstan-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: capstan-apiserver}
rules:
- apiGroups: [""]
  resources: [namespaces, resourcequotas]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [resourcequotas/status]
  verbs: [update]
- apiGroups: [admissionregistration.k8s.io]
  resources: [mutatingwebhookconfigurations, validatingwebhookconfigurations, validatingadmissionpolicies,
    validatingadmissionpolicybindings, mutatingadmissionpolicies, mutatingadmissionpolicybindings]
  verbs: [get, list, watch]
- apiGroups: [flowcontrol.apiserver.k8s.io]
  resources: [flowschemas, prioritylevelconfigurations]
  verbs: [get, list, watch]
- apiGroups: [flowcontrol.apiserver.k8s.io]
  resources: [flowschemas/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: capstan-apiserver}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: capstan-apiserver}
subjects: [{kind: ServiceAccount, name: capstan, namespace: capstan-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "capstan:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: capstan, namespace: capstan-system}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "capstan:extension-apiserver-authentication-reader", namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: capstan, namespace: capstan-system}]
`

// builtinUserRoles aggregate config.capstan.dev into the built-in roles when
// Options.UserRoleFiles is empty; artifacts/user-roles holds the deployable
// equivalent, with the same choices. ConfigSets and ConfigRevisions hold
// secretData, so, as Kubernetes does with Secrets, they stay out of view:
// view sees ConfigPolicies only. edit and admin get ConfigSets (status
// read-only) with rollback, and read and delete on ConfigRevisions.
const builtinUserRoles = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: capstan-aggregate-to-view
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- apiGroups: [config.capstan.dev]
  resources: [configpolicies, configpolicies/status]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: capstan-aggregate-to-edit
  labels: {rbac.authorization.k8s.io/aggregate-to-edit: "true", rbac.authorization.k8s.io/aggregate-to-admin: "true"}
rules:
- apiGroups: [config.capstan.dev]
  resources: [configsets]
  verbs: [get, list, watch, create, update, patch, delete, deletecollection]
- apiGroups: [config.capstan.dev]
  resources: [configsets/status]
  verbs: [get]
- apiGroups: [config.capstan.dev]
  resources: [configsets/rollback]
  verbs: [create]
- apiGroups: [config.capstan.dev]
  resources: [configrevisions]
  verbs: [get, list, watch, delete, deletecollection]
`

// manifestSource is a set of manifests: files, or built-in YAML when there are none.
type manifestSource struct {
	files   []string
	builtin string
}

func (m manifestSource) String() string {
	if len(m.files) == 0 {
		return "built-in"
	}
	var dirs []string
	for _, f := range m.files {
		if d := filepath.Dir(f); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return strings.Join(dirs, ",")
}

// documents returns the YAML documents of the source.
func (m manifestSource) documents() ([][]byte, error) {
	inputs := map[string][]byte{}
	names := m.files
	if len(names) == 0 {
		names = []string{"built-in"}
		inputs["built-in"] = []byte(m.builtin)
	}
	var docs [][]byte
	for _, name := range names {
		data, ok := inputs[name]
		if !ok {
			var err error
			if data, err = os.ReadFile(name); err != nil {
				return nil, err
			}
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			docs = append(docs, doc)
		}
	}
	return docs, nil
}

// applyManifests server-side applies every object of the sources, in order.
// Kustomization files are skipped: they only list the others.
func applyManifests(ctx context.Context, cfg *rest.Config, sources ...manifestSource) error {
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, src := range sources {
		docs, err := src.documents()
		if err != nil {
			return err
		}
		for _, doc := range docs {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
				return fmt.Errorf("reading %s: %w", src, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			gvk := obj.GroupVersionKind()
			if gvk.Group == "kustomize.config.k8s.io" {
				continue
			}
			mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return fmt.Errorf("%s %s in %s: %w", gvk.Kind, obj.GetName(), src, err)
			}
			var resource dynamic.ResourceInterface = client.Resource(mapping.Resource)
			if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
				if obj.GetNamespace() == "" {
					return fmt.Errorf("%s %s in %s has no namespace", gvk.Kind, obj.GetName(), src)
				}
				resource = client.Resource(mapping.Resource).Namespace(obj.GetNamespace())
			}
			data, err := obj.MarshalJSON()
			if err != nil {
				return err
			}
			if _, err := resource.Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: "capstan-e2e-cluster", Force: ptr.To(true)}); err != nil {
				return fmt.Errorf("applying %s %s from %s: %w", gvk.Kind, obj.GetName(), src, err)
			}
		}
	}
	return nil
}

// bootstrap creates what must exist before Capstan starts (its namespace,
// Service and RBAC) and the user ClusterRoles.
func (c *Cluster) bootstrap(ctx context.Context, cfg *rest.Config, rbac, userRoles manifestSource) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: CapstanNamespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", CapstanNamespace, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: CapstanService, Namespace: CapstanNamespace},
		Spec: corev1.ServiceSpec{
			Type:         corev1.ServiceTypeExternalName,
			ExternalName: "127.0.0.1",
			Ports:        []corev1.ServicePort{{Name: "https", Protocol: corev1.ProtocolTCP, Port: int32(c.CapstanPort)}},
		},
	}
	if _, err := client.CoreV1().Services(CapstanNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service %s: %w", CapstanService, err)
	}
	if err := applyManifests(ctx, cfg, rbac, userRoles); err != nil {
		return err
	}
	if err := AggregateClusterRoles(ctx, client); err != nil {
		return err
	}
	// Capstan reads the front-proxy CA and allowed names from this
	// ConfigMap, which kube-apiserver writes shortly after it is ready.
	err = poll(ctx, func(ctx context.Context) error {
		cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "extension-apiserver-authentication", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data["requestheader-client-ca-file"] == "" {
			return errors.New("no requestheader-client-ca-file yet")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-system/extension-apiserver-authentication: %w", err)
	}
	return nil
}

// AggregateClusterRoles does once what kube-controller-manager's
// clusterrole-aggregation controller does continuously, which this cluster
// does not run: every ClusterRole with an aggregationRule gets the rules of
// the ClusterRoles its selectors match, in name order without duplicates,
// repeated until nothing changes (view aggregates into edit, edit into
// admin). Call it again after creating ClusterRoles with aggregation labels.
func AggregateClusterRoles(ctx context.Context, client kubernetes.Interface) error {
	// Three rounds settle the built-in chain; more means a cycle.
	for range 5 {
		list, err := client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		changed := false
		for i := range list.Items {
			shared := &list.Items[i]
			if shared.AggregationRule == nil {
				continue
			}
			rules, err := aggregatedRules(shared, list.Items)
			if err != nil {
				return err
			}
			if equality.Semantic.DeepEqual(rules, shared.Rules) {
				continue
			}
			apply := rbacv1ac.ClusterRole(shared.Name)
			for _, r := range rules {
				apply.WithRules(rbacv1ac.PolicyRule().WithAPIGroups(r.APIGroups...).WithResources(r.Resources...).
					WithResourceNames(r.ResourceNames...).WithNonResourceURLs(r.NonResourceURLs...).WithVerbs(r.Verbs...))
			}
			if _, err := client.RbacV1().ClusterRoles().Apply(ctx, apply,
				metav1.ApplyOptions{FieldManager: "clusterrole-aggregation-controller", Force: true}); err != nil {
				return fmt.Errorf("aggregating ClusterRole %s: %w", shared.Name, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return errors.New("ClusterRole aggregation did not settle; is there a cycle?")
}

// aggregatedRules computes the rules kube-controller-manager would give shared.
func aggregatedRules(shared *rbacv1.ClusterRole, all []rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	rules := []rbacv1.PolicyRule{}
	for _, sel := range shared.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return nil, err
		}
		var matched []rbacv1.ClusterRole
		for _, r := range all {
			if r.Name != shared.Name && selector.Matches(labels.Set(r.Labels)) {
				matched = append(matched, r)
			}
		}
		sort.Slice(matched, func(i, j int) bool { return matched[i].Name < matched[j].Name })
		for _, r := range matched {
			for _, rule := range r.Rules {
				if !containsRule(rules, rule) {
					rules = append(rules, rule)
				}
			}
		}
	}
	return rules, nil
}

func containsRule(rules []rbacv1.PolicyRule, rule rbacv1.PolicyRule) bool {
	for _, r := range rules {
		if equality.Semantic.DeepEqual(r, rule) {
			return true
		}
	}
	return false
}

// registerAPIServices creates an APIService per version, pointing at the
// ExternalName Service and trusting Capstan's CA (never insecureSkipTLSVerify).
func (c *Cluster) registerAPIServices(ctx context.Context, cfg *rest.Config) error {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(c.CapstanCAFile)
	if err != nil {
		return err
	}
	for i, v := range Versions {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1",
			"kind":       "APIService",
			"metadata":   map[string]any{"name": v + "." + Group},
			"spec": map[string]any{
				"group":   Group,
				"version": v,
				"service": map[string]any{
					"namespace": CapstanNamespace,
					"name":      CapstanService,
					"port":      int64(c.CapstanPort),
				},
				// caBundle is []byte in the API, so base64 in JSON.
				"caBundle":             base64.StdEncoding.EncodeToString(caPEM),
				"groupPriorityMinimum": int64(1000),
				// The first version is preferred: the highest priority wins.
				"versionPriority": int64(100 - 10*i),
			},
		}}
		if _, err := client.Resource(apiServiceResource).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating APIService %s.%s: %w", v, Group, err)
		}
	}
	return nil
}

// Condition is an APIService's Available condition.
type Condition struct {
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// APIServiceConditions returns the Available condition of each APIService,
// keyed by name (v1beta1.config.capstan.dev); a missing APIService or
// condition has an empty Status.
func (c *Cluster) APIServiceConditions(ctx context.Context) (map[string]Condition, error) {
	cfg, err := c.AdminRESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	out := map[string]Condition{}
	for _, name := range apiServiceNames() {
		obj, err := client.Resource(apiServiceResource).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out[name] = Condition{Reason: "NotFound"}
			continue
		}
		if err != nil {
			return nil, err
		}
		conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		cond := Condition{}
		for _, raw := range conditions {
			m, _ := raw.(map[string]any)
			if m["type"] == "Available" {
				cond.Status, _ = m["status"].(string)
				cond.Reason, _ = m["reason"].(string)
				cond.Message, _ = m["message"].(string)
			}
		}
		out[name] = cond
	}
	return out, nil
}

// WaitAvailable waits until every APIService reports Available=True.
func (c *Cluster) WaitAvailable(ctx context.Context) error {
	return c.waitAPIServices(ctx, "True")
}

// WaitUnavailable waits until every APIService reports Available=False, as
// the aggregator does once it cannot reach Capstan.
func (c *Cluster) WaitUnavailable(ctx context.Context) error {
	return c.waitAPIServices(ctx, "False")
}

func (c *Cluster) waitAPIServices(ctx context.Context, status string) error {
	err := poll(ctx, func(ctx context.Context) error {
		conds, err := c.APIServiceConditions(ctx)
		if err != nil {
			return err
		}
		for name, cond := range conds {
			if cond.Status != status {
				return fmt.Errorf("%s is Available=%q (%s: %s)", name, cond.Status, cond.Reason, cond.Message)
			}
		}
		return nil
	})
	if err == nil {
		return nil
	}
	err = fmt.Errorf("waiting for the APIServices to be Available=%s: %w", status, err)
	if p := c.Process(ProcessCapstan); status == "True" && p != nil {
		// Capstan's log usually says why the aggregator cannot reach it.
		err = fmt.Errorf("%w; end of %s:\n%s", err, p.LogFile, p.LogTail())
	}
	return err
}

// waitOpenAPI waits until kube-apiserver's aggregated OpenAPI v3 lists every
// version of the group. The aggregator adds it shortly after the APIServices
// turn Available; until then `kubectl explain` fails.
func waitOpenAPI(ctx context.Context, cfg *rest.Config) error {
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	err = poll(ctx, func(ctx context.Context) error {
		raw, err := disco.RESTClient().Get().AbsPath("/openapi/v3").DoRaw(ctx)
		if err != nil {
			return err
		}
		var index struct {
			Paths map[string]json.RawMessage `json:"paths"`
		}
		if err := json.Unmarshal(raw, &index); err != nil {
			return err
		}
		for _, v := range Versions {
			if _, ok := index.Paths["apis/"+Group+"/"+v]; !ok {
				return fmt.Errorf("/openapi/v3 does not list apis/%s/%s yet", Group, v)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the group in kube-apiserver's OpenAPI v3: %w", err)
	}
	return nil
}

// poll calls f every 200ms until it succeeds or ctx ends; the error names
// f's last failure.
func poll(ctx context.Context, f func(context.Context) error) error {
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
