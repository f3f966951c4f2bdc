package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"capstan.dev/capstan/test/utils/controlplane"
	"capstan.dev/capstan/test/utils/ports"
	"capstan.dev/capstan/test/utils/process"
)

// localServerFlags are what local mode runs with: the in-flight limits at
// their defaults' values (local mode has no kube-apiserver to read priority
// and fairness configuration from) and profiling on for the bench.
var localServerFlags = []string{
	"--max-requests-inflight=400",
	"--max-mutating-requests-inflight=200",
	"--profiling=true",
}

// deployedEncryption is the encryption provider artifacts/encryption deploys
// Capstan with; the bench encrypts the CRD on kube-apiserver with it too, so
// that both sides of the headline pay for the same encryption at rest.
const deployedEncryption = "secretbox"

// How the storing servers reach their etcd: in the control plane both etcds
// require TLS client certificates, as production control planes do; the
// bench's own etcds (local mode, raw etcd) listen in plain HTTP.
const (
	clusterEtcd = "TLS with client certificates, on 127.0.0.1"
	plainEtcd   = "plain HTTP on 127.0.0.1"
)

// benchUser is who the bench's clients are on the cluster: a user with a
// ClusterRole on both ConfigSet resources, as a platform team's tenants are,
// so that authorization and priority and fairness run their usual course
// (system:masters is exempt from both).
const benchUser = "capstan-bench"

// Settings common to every API server system.
const (
	wireJSON      = "JSON (application/json)"
	wireProtobuf  = "protobuf (application/vnd.kubernetes.protobuf)"
	objectsShape  = "ConfigSets of 12 data and 4 secretData entries of 64 bytes (~1 KiB), labelled"
	benchClient   = "the generated typed client, QPS=-1 (no client-side rate limit)"
	capstanChain  = "Capstan's, as deployed: NamespaceLifecycle, admission policies and webhooks, ConfigPolicy, ResourceQuota"
	localChain    = "Capstan's local chain: ConfigPolicy"
	aggregatedRun = "capstan-apiserver --mode=aggregated with the deployment's flags"
	benchUserAuth = "client certificate of user " + benchUser + ", authorized by an RBAC ClusterRole (Capstan delegates both to kube-apiserver)"
)

// binaries are the programs the bench runs.
type binaries struct {
	root    string
	etcd    string
	capstan string
}

// encryptionConfig writes an EncryptionConfiguration for Capstan's
// ConfigSets and ConfigRevisions with one provider: identity, aesgcm,
// secretbox or kms.
func encryptionConfig(path, provider, kmsSocket string) error {
	return encryptionConfigFor(path, provider, kmsSocket, "configsets.config.capstan.dev", "configrevisions.config.capstan.dev")
}

// encryptionConfigFor writes an EncryptionConfiguration for resources with
// one provider and a fresh key.
func encryptionConfigFor(path, provider, kmsSocket string, resources ...string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	k := base64.StdEncoding.EncodeToString(key)
	var p string
	switch provider {
	case "identity":
		p = "  - identity: {}\n"
	case "aesgcm", "secretbox":
		p = fmt.Sprintf("  - %s:\n      keys:\n      - name: key1\n        secret: %s\n", provider, k)
	case "kms":
		p = fmt.Sprintf("  - kms:\n      apiVersion: v2\n      name: bench-mock\n      endpoint: unix://%s\n      timeout: 3s\n", kmsSocket)
	default:
		return fmt.Errorf("unknown encryption provider %q", provider)
	}
	cfg := "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources:\n"
	for _, r := range resources {
		cfg += "  - " + r + "\n"
	}
	cfg += "  providers:\n" + p
	if provider != "identity" {
		cfg += "  - identity: {}\n"
	}
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// waitReadyz polls /readyz of an API server.
func waitReadyz(ctx context.Context, p *process.Process, cfg *rest.Config) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return p.WaitReady(wctx, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/readyz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s: %s", resp.Status, body)
		}
		return nil
	})
}

// startCapstanLocal starts O: its own etcd and capstan-apiserver in local
// mode on it, with one encryption provider and any extra flags.
func startCapstanLocal(ctx context.Context, bins binaries, dir, name, provider, kmsSocket string, extraArgs ...string) (*kubeSystem, error) {
	etcd, etcdURL, err := startEtcd(ctx, bins.etcd, dir, "etcd-"+name)
	if err != nil {
		return nil, err
	}
	encFile := filepath.Join(dir, name+"-encryption.yaml")
	if err := encryptionConfig(encFile, provider, kmsSocket); err != nil {
		_ = etcd.Stop(10 * time.Second)
		return nil, err
	}
	args := append([]string{"--etcd-servers=" + etcdURL, "--encryption-provider-config=" + encFile}, extraArgs...)
	sys, err := startLocalServer(ctx, bins, dir, name, args)
	if err != nil {
		_ = etcd.Stop(10 * time.Second)
		return nil, err
	}
	sys.etcds = []*pidRef{{role: "etcd", pid: pidOf(etcd)}}
	sys.config.Encryption = provider
	sys.etcdURL, sys.etcdHTTP = etcdURL, http.DefaultClient
	stopServer := sys.stopFunc
	sys.stopFunc = func() {
		stopServer()
		_ = etcd.Stop(10 * time.Second)
	}
	return sys, nil
}

// startCapstanEmbedded starts capstan-apiserver as `make run` does: local
// mode with its embedded etcd, in its own process, and its own encryption key.
func startCapstanEmbedded(ctx context.Context, bins binaries, dir, name string, extraArgs ...string) (*kubeSystem, error) {
	return startLocalServer(ctx, bins, dir, name, extraArgs)
}

// startLocalServer starts capstan-apiserver in local mode with the bench's
// limits and args, and waits until it is ready.
func startLocalServer(ctx context.Context, bins binaries, dir, name string, extraArgs []string) (*kubeSystem, error) {
	ports, err := ports.FreeN(1)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, name)
	args := append([]string{bins.capstan,
		"--mode=local",
		"--data-dir=" + dataDir,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[0]),
	}, localServerFlags...)
	args = append(args, extraArgs...)
	p, err := startProcess(name, filepath.Join(dir, "logs", name+".log"), args)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*kubeSystem, error) {
		_ = p.Stop(15 * time.Second)
		return nil, err
	}
	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	var cfg *rest.Config
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err = p.WaitReady(wctx, func(context.Context) error {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err == nil {
			cfg = c
		}
		return err
	})
	if err != nil {
		return fail(err)
	}
	if err := waitReadyz(ctx, p, cfg); err != nil {
		return fail(err)
	}
	// H1's writes each get a warning that older revisions were pruned.
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := capstanClient(cfg)
	if err != nil {
		return fail(err)
	}
	return &kubeSystem{
		sysName:    "O",
		apiVersion: "config.capstan.dev/v1beta1",
		client:     client,
		servers:    []*pidRef{{role: "capstan", pid: pidOf(p)}},
		memory:     &pidRef{role: "capstan", pid: pidOf(p)},
		pprof:      []pprofEndpoint{{role: "capstan", config: cfg}},
		stopFunc:   func() { _ = p.Stop(20 * time.Second) },
		config: Settings{
			Path:           "client → capstan-apiserver",
			Server:         "capstan-apiserver --mode=local, etcd of its own",
			Authentication: "local mode's admin client certificate (one admin, no RBAC)",
			Admission:      localChain,
			Etcd:           plainEtcd,
			Encryption:     "identity",
			WireFormat:     wireJSON,
			Objects:        objectsShape,
			Client:         benchClient,
		},
	}, nil
}

// benchGroup is the CRD's group: ConfigSet's shape under another name.
var benchGroup = schema.GroupVersion{Group: "bench.capstan.dev", Version: "v1beta1"}

// crdManifest is a CRD whose schema matches ConfigSet v1beta1.
const crdManifest = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: configsets.bench.capstan.dev
spec:
  group: bench.capstan.dev
  scope: Namespaced
  names: {plural: configsets, singular: configset, kind: ConfigSet, listKind: ConfigSetList, shortNames: [bcfgs]}
  versions:
  - name: v1beta1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              data:
                type: object
                additionalProperties: {type: string}
              secretData:
                type: object
                additionalProperties: {type: string, format: byte}
              immutable: {type: boolean}
              revisionHistoryLimit: {type: integer, format: int32, minimum: 1, maximum: 1000, default: 10}
          status:
            type: object
            properties:
              currentRevision: {type: integer, format: int64}
              observedGeneration: {type: integer, format: int64}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status, lastTransitionTime, reason, message]
                  properties:
                    type: {type: string}
                    status: {type: string, enum: ["True", "False", "Unknown"]}
                    observedGeneration: {type: integer, format: int64}
                    lastTransitionTime: {type: string, format: date-time}
                    reason: {type: string}
                    message: {type: string}
`

// benchCluster is the cluster harness's control plane with kube-apiserver
// and Capstan restarted with the bench's flags; it hosts O-agg, O-direct and C.
type benchCluster struct {
	c     *controlplane.Cluster
	kube  *process.Process
	admin *rest.Config
	// user is the bench user's configuration for kube-apiserver.
	user *rest.Config
	// capstanAdmin and capstanUser reach Capstan directly, as the admin (for
	// /debug/pprof) and as the bench user.
	capstanAdmin *rest.Config
	capstanUser  *rest.Config
}

func (b *benchCluster) capstanPID() int {
	if p := b.c.Process(controlplane.ProcessCapstan); p != nil {
		return p.PID
	}
	return 0
}

func (b *benchCluster) etcdPID(name string) int {
	if p := b.c.Process(name); p != nil {
		return p.PID
	}
	return 0
}

func (b *benchCluster) down() {
	if b.kube != nil {
		_ = b.kube.Stop(20 * time.Second)
	}
	if err := b.c.Down(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the cluster:", err)
	}
}

// startCluster runs the cluster harness and then restarts kube-apiserver and
// Capstan as they are deployed, with profiling on: priority and fairness on
// both, Capstan's ConfigSets and ConfigRevisions and the CRD's objects
// encrypted with the deployed provider.
func startCluster(ctx context.Context, bins binaries, dir string, progress io.Writer) (*benchCluster, error) {
	opts := controlplane.RepoOptions(bins.root, filepath.Join(dir, "cluster"))
	opts.Progress = progress
	c, err := controlplane.Up(ctx, opts)
	if err != nil {
		return nil, err
	}
	b := &benchCluster{c: c}
	if err := b.reconfigure(ctx); err != nil {
		b.down()
		return nil, err
	}
	return b, nil
}

// capstanArgs are flags the control plane's capstan-apiserver gets after the
// deployment's (-capstan-args), to measure a setting against its default.
var capstanArgs []string

// aggregatedServer is the Server setting of the control plane's Capstan.
func aggregatedServer() string {
	if len(capstanArgs) == 0 {
		return aggregatedRun
	}
	return aggregatedRun + " and " + strings.Join(capstanArgs, " ")
}

// withProfiling replaces any --profiling flag of args by --profiling=true.
func withProfiling(args []string) []string {
	return append(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, "--profiling") }), "--profiling=true")
}

func (b *benchCluster) reconfigure(ctx context.Context) error {
	c := b.c
	admin, err := c.AdminRESTConfig()
	if err != nil {
		return err
	}
	b.admin = admin

	kp := c.Process(controlplane.ProcessKubeAPIServer)
	if kp == nil {
		return errors.New("the cluster has no kube-apiserver")
	}
	kubeEncryption := filepath.Join(c.WorkDir, "kube-apiserver-encryption.yaml")
	if err := encryptionConfigFor(kubeEncryption, deployedEncryption, "", "configsets."+benchGroup.Group); err != nil {
		return err
	}
	args := append(withProfiling(kp.Args), "--encryption-provider-config="+kubeEncryption)
	if err := kp.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping the harness's kube-apiserver: %w", err)
	}
	if !kp.WaitExit(60 * time.Second) {
		return errors.New("the harness's kube-apiserver did not stop")
	}
	b.kube, err = startProcess("kube-apiserver", filepath.Join(c.WorkDir, "logs", "kube-apiserver-bench.log"), args)
	if err != nil {
		return err
	}
	if err := waitReadyz(ctx, b.kube, admin); err != nil {
		return err
	}

	if err := encryptionConfig(c.EncryptionConfigFile, deployedEncryption, ""); err != nil {
		return err
	}
	if err := c.StopCapstan(); err != nil {
		return err
	}
	cp := c.Process(controlplane.ProcessCapstan)
	cp.Args = append(withProfiling(cp.Args), capstanArgs...)
	if err := c.StartCapstan(ctx); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.WaitAvailable(wctx); err != nil {
		return err
	}
	if err := b.grantBenchUser(ctx); err != nil {
		return fmt.Errorf("RBAC for %s: %w", benchUser, err)
	}
	kubeconfig, err := c.UserKubeconfig(benchUser)
	if err != nil {
		return err
	}
	if b.user, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return err
	}
	// Client certificates signed by the cluster CA authenticate to Capstan
	// directly too (delegated authentication trusts kube-apiserver's client CA).
	direct := func(cfg *rest.Config) *rest.Config {
		d := rest.CopyConfig(cfg)
		d.Host = c.CapstanURL
		d.TLSClientConfig.CAData = nil
		d.TLSClientConfig.CAFile = c.CapstanCAFile
		return d
	}
	b.capstanAdmin = direct(admin)
	// O-direct calls Capstan as kube-apiserver's aggregator does: with the
	// front-proxy client certificate and the bench user in X-Remote-*
	// headers, so that O-agg against O-direct is the proxy hop alone.
	b.capstanUser = &rest.Config{
		Host: c.CapstanURL,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   c.CapstanCAFile,
			CertFile: c.FrontProxyClientCertFile,
			KeyFile:  c.FrontProxyClientKeyFile,
		},
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			return frontProxyHeaders{rt}
		},
	}
	return nil
}

// frontProxyHeaders sends the bench user in the headers kube-apiserver's
// aggregator sets on the requests it proxies.
type frontProxyHeaders struct{ next http.RoundTripper }

func (f frontProxyHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Remote-User", benchUser)
	r.Header.Set("X-Remote-Group", "system:authenticated")
	return f.next.RoundTrip(r)
}

// grantBenchUser lets the bench user do everything with ConfigSets of both
// groups, and read revisions.
func (b *benchCluster) grantBenchUser(ctx context.Context) error {
	kube, err := kubernetes.NewForConfig(b.admin)
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: benchUser},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{controlplane.Group, benchGroup.Group}, Resources: []string{"configsets"}, Verbs: []string{rbacv1.VerbAll}},
			{APIGroups: []string{controlplane.Group}, Resources: []string{"configrevisions"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: benchUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: benchUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: benchUser}},
	}
	_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	return err
}

// clusterSettings are the settings of a system on the bench's control plane:
// the bench user, the deployed defaults, JSON.
func clusterSettings(path, server, admission string) Settings {
	return Settings{
		Path:                path,
		Server:              server,
		Authentication:      benchUserAuth,
		Admission:           admission,
		PriorityAndFairness: true,
		Etcd:                clusterEtcd,
		Encryption:          deployedEncryption,
		WireFormat:          wireJSON,
		Objects:             objectsShape,
		Client:              benchClient,
	}
}

// aggregated is O-agg: Capstan through kube-apiserver's aggregator, called as
// the bench user.
func (b *benchCluster) aggregated() (*kubeSystem, error) {
	client, err := capstanClient(b.user)
	if err != nil {
		return nil, err
	}
	core, err := kubernetes.NewForConfig(restConfigForBench(b.admin))
	if err != nil {
		return nil, err
	}
	etcdTLS, err := b.c.CapstanEtcdTLS()
	if err != nil {
		return nil, err
	}
	return &kubeSystem{
		sysName:    "O-agg",
		apiVersion: "config.capstan.dev/v1beta1",
		client:     client,
		core:       core,
		servers:    []*pidRef{{role: "kube-apiserver", pid: pidOf(b.kube)}, {role: "capstan", pid: b.capstanPID}},
		etcds:      []*pidRef{{role: "etcd", pid: func() int { return b.etcdPID(controlplane.ProcessCapstanEtcd) }}},
		memory:     &pidRef{role: "capstan", pid: b.capstanPID},
		etcdURL:    b.c.CapstanEtcdURL,
		etcdHTTP:   tlsHTTPClient(etcdTLS),
		pprof:      []pprofEndpoint{{role: "kube-apiserver", config: b.admin}, {role: "capstan", config: b.capstanAdmin}},
		stopFunc:   func() {},
		config: clusterSettings("client → kube-apiserver → aggregator proxy (front-proxy certificate, X-Remote-* headers) → capstan-apiserver",
			aggregatedServer(), capstanChain),
	}, nil
}

// aggregatedProtobuf is O-agg-pb: O-agg with the client speaking protobuf.
func (b *benchCluster) aggregatedProtobuf() (*kubeSystem, error) {
	sys, err := b.aggregated()
	if err != nil {
		return nil, err
	}
	if sys.client, err = capstanProtobufClient(b.user); err != nil {
		return nil, err
	}
	sys.sysName = "O-agg-pb"
	sys.config.WireFormat = wireProtobuf
	return sys, nil
}

// direct is O-direct: the aggregated Capstan of O-agg called directly the way
// kube-apiserver's aggregator calls it, without kube-apiserver in the path.
func (b *benchCluster) direct() (*kubeSystem, error) {
	sys, err := b.aggregated()
	if err != nil {
		return nil, err
	}
	if sys.client, err = capstanClient(b.capstanUser); err != nil {
		return nil, err
	}
	sys.sysName = "O-direct"
	sys.servers = []*pidRef{{role: "capstan", pid: b.capstanPID}}
	sys.pprof = []pprofEndpoint{{role: "capstan", config: b.capstanAdmin}}
	sys.config.Path = "client → capstan-apiserver"
	sys.config.Authentication = "the front-proxy client certificate with user " + benchUser + " in X-Remote-* headers, as kube-apiserver's aggregator sends"
	return sys, nil
}

// crd is C: the CRD on the same kube-apiserver.
func (b *benchCluster) crd(ctx context.Context) (*kubeSystem, error) {
	dyn, err := dynamic.NewForConfig(b.admin)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(crdManifest), &u.Object); err != nil {
		return nil, err
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, u, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating the CRD: %w", err)
	}
	client, err := crdClient(b.user, benchGroup)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := poll(wctx, "the CRD to be served", func(ctx context.Context) error {
		_, err := client.ConfigSets("default").List(ctx, metav1.ListOptions{Limit: 1})
		return err
	}); err != nil {
		return nil, err
	}
	// The first writes to a new CRD wait for its storage; one write and
	// delete outside the bench's namespaces keeps that out of the figures.
	warm := newConfigSet(benchGroup.String(), "default", "bench-warmup", 0, smallShape)
	if _, err := client.ConfigSets("default").Create(ctx, warm, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("warm-up create on the CRD: %w", err)
	}
	if err := client.ConfigSets("default").Delete(ctx, warm.Name, metav1.DeleteOptions{}); err != nil {
		return nil, fmt.Errorf("warm-up delete on the CRD: %w", err)
	}
	kubeEtcdTLS, err := b.c.KubeEtcdTLS()
	if err != nil {
		return nil, err
	}
	core, err := kubernetes.NewForConfig(restConfigForBench(b.admin))
	if err != nil {
		return nil, err
	}
	return &kubeSystem{
		sysName:    "C",
		apiVersion: benchGroup.String(),
		client:     client,
		core:       core,
		servers:    []*pidRef{{role: "kube-apiserver", pid: pidOf(b.kube)}},
		etcds:      []*pidRef{{role: "etcd", pid: func() int { return b.etcdPID(controlplane.ProcessKubeEtcd) }}},
		memory:     &pidRef{role: "kube-apiserver", pid: pidOf(b.kube)},
		etcdURL:    b.c.KubeEtcdURL,
		etcdHTTP:   tlsHTTPClient(kubeEtcdTLS),
		pprof:      []pprofEndpoint{{role: "kube-apiserver", config: b.admin}},
		stopFunc:   func() {},
		config: clusterSettings("client → kube-apiserver", "kube-apiserver's apiextensions-apiserver (a CRD with ConfigSet's schema)",
			"kube-apiserver's: NamespaceLifecycle, admission policies"),
	}, nil
}
