// Package controlplane runs a real control plane on 127.0.0.1 for Capstan's
// end-to-end tests and for development: etcd and kube-apiserver with the
// aggregation layer, a second etcd for Capstan (each etcd with TLS and
// client certificates of its own CA), and capstan-apiserver in aggregated mode, registered through
// APIService objects with a caBundle.
//
// kube-controller-manager runs the controllers that act on API objects alone
// (namespace deletion, garbage collection, resource quota usage, the
// aggregated ClusterRoles, service accounts, and the workload controllers that
// make ReplicaSets and ControllerRevisions); with no kubelet or kube-proxy,
// Pods are never scheduled or run. The aggregator reaches Capstan through an
// ExternalName Service pointing at 127.0.0.1, since without kube-proxy a
// Service's cluster IP leads nowhere. Up also fills in the built-in aggregated
// ClusterRoles (view, edit, admin) once itself, so that they are complete when
// it returns, before the controller's first pass.
//
// Up starts everything and waits until both APIServices are Available;
// Down stops exactly the processes Up started, by PID. A state file in the
// work folder lets another process Load the cluster to stop it or report on it.
package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"capstan.dev/capstan/pkg/util/atomicfile"
	"capstan.dev/capstan/test/utils/ports"
)

// Names the cluster gives to Capstan's objects and identities.
const (
	// CapstanNamespace holds Capstan's Service and service account.
	CapstanNamespace = "capstan-system"
	// CapstanService is the ExternalName Service the APIServices point at.
	CapstanService = "capstan"
	// CapstanServiceAccount is Capstan's identity: its client certificate
	// carries this service account's user name, so RBAC bindings written for
	// the in-cluster deployment apply unchanged.
	CapstanServiceAccount = "capstan"
	// AdminUser is the user name in admin.kubeconfig's certificate (group system:masters).
	AdminUser = "kubernetes-admin"
	// FrontProxyClientName is the common name of kube-apiserver's proxy
	// client certificate, the only name Capstan accepts X-Remote-* headers from.
	FrontProxyClientName = "front-proxy-client"
	// Group is the API group Capstan serves.
	Group = "config.capstan.dev"

	// AdminKubeconfigFile is the admin kubeconfig's name in the work folder.
	AdminKubeconfigFile = "admin.kubeconfig"
	// StateFile is the state file's name in the work folder.
	StateFile = "cluster.json"
)

// Process names, in start order.
const (
	ProcessKubeEtcd              = "etcd-kube"
	ProcessCapstanEtcd           = "etcd-capstan"
	ProcessKubeAPIServer         = "kube-apiserver"
	ProcessKubeControllerManager = "kube-controller-manager"
	ProcessCapstan               = "capstan"
	ProcessControllerManager     = "capstan-controller-manager"
)

// ControllerManagerUser is capstan-controller-manager's user name: the
// service account artifacts/controller-manager binds its RBAC to.
const ControllerManagerUser = "system:serviceaccount:" + CapstanNamespace + ":capstan-controller-manager"

// KubeControllerManagerUser is kube-controller-manager's user name; its
// controllers act as their own service accounts in kube-system
// (--use-service-account-credentials), bound by kube-apiserver's bootstrap RBAC.
const KubeControllerManagerUser = "system:kube-controller-manager"

// controllers are kube-controller-manager's controllers that do something
// without nodes: the rest wait for kubelets or a cloud provider.
var controllers = []string{
	"namespace-controller", "garbage-collector-controller", "resourcequota-controller",
	"clusterrole-aggregation-controller", "serviceaccount-controller",
	"root-ca-certificate-publisher-controller",
	"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
}

// Versions are the versions of the group registered as APIServices, the
// preferred one first.
var Versions = []string{"v1beta1", "v1alpha1"}

// CapstanUser is the user name Capstan authenticates to kube-apiserver as.
const CapstanUser = "system:serviceaccount:" + CapstanNamespace + ":" + CapstanServiceAccount

// Binaries are the programs the cluster runs.
type Binaries struct {
	KubeAPIServer         string `json:"kubeAPIServer"`
	KubeControllerManager string `json:"kubeControllerManager"`
	Etcd                  string `json:"etcd"`
	Capstan               string `json:"capstan"`
	ControllerManager     string `json:"controllerManager"`
}

// RepoBinaries returns where hack/build-tools.sh and `make build` put the
// binaries in a checkout rooted at root.
func RepoBinaries(root string) Binaries {
	return Binaries{
		KubeAPIServer:         filepath.Join(root, "_output", "bin", "kube-apiserver"),
		KubeControllerManager: filepath.Join(root, "_output", "bin", "kube-controller-manager"),
		Etcd:                  filepath.Join(root, "_output", "bin", "etcd"),
		Capstan:               filepath.Join(root, "bin", "capstan-apiserver"),
		ControllerManager:     filepath.Join(root, "bin", "capstan-controller-manager"),
	}
}

// RepoOptions returns Options for a checkout rooted at root: its binaries
// and, when artifacts/rbac and artifacts/user-roles hold manifests, those
// instead of the built-in RBAC, so that the deployable manifests are the ones
// exercised.
func RepoOptions(root, workDir string) Options {
	rbac, _ := filepath.Glob(filepath.Join(root, "artifacts", "rbac", "*.yaml"))
	if len(rbac) > 0 {
		rbac = append(rbac, filepath.Join(root, "artifacts", "controller-manager", "serviceaccount.yaml"),
			filepath.Join(root, "artifacts", "controller-manager", "rbac.yaml"))
	}
	userRoles, _ := filepath.Glob(filepath.Join(root, "artifacts", "user-roles", "*.yaml"))
	return Options{
		WorkDir:       workDir,
		Binaries:      RepoBinaries(root),
		RBACFiles:     rbac,
		UserRoleFiles: userRoles,
	}
}

// Check fails with a message naming each missing binary and how to build it.
func (b Binaries) Check() error {
	var errs []error
	for _, bin := range []struct{ path, build string }{
		{b.KubeAPIServer, "hack/build-tools.sh"},
		{b.KubeControllerManager, "hack/build-tools.sh"},
		{b.Etcd, "hack/build-tools.sh"},
		{b.Capstan, "make build"},
		{b.ControllerManager, "make build"},
	} {
		info, err := os.Stat(bin.path)
		switch {
		case bin.path == "":
			errs = append(errs, fmt.Errorf("a binary path is empty"))
		case err != nil:
			errs = append(errs, fmt.Errorf("%s is missing (build it with %s): %w", bin.path, bin.build, err))
		case info.IsDir() || info.Mode()&0o111 == 0:
			errs = append(errs, fmt.Errorf("%s is not an executable file (build it with %s)", bin.path, bin.build))
		}
	}
	return errors.Join(errs...)
}

// Options configure Up.
type Options struct {
	// WorkDir receives certificates, kubeconfigs, etcd data, logs and the
	// state file. Up replaces what an earlier, stopped cluster left there and
	// refuses to start while one still runs.
	WorkDir string
	// Binaries are the programs to run; see RepoBinaries.
	Binaries Binaries
	// Detach starts every process in a session of its own, so that the
	// cluster outlives the caller (hack/local-cluster.sh up). Without it the
	// processes are killed when the caller dies.
	Detach bool
	// RBACFiles are manifests with Capstan's service account and the RBAC
	// its identity needs (artifacts/rbac/*.yaml), and the controller
	// manager's (artifacts/controller-manager); every object in them is
	// server-side applied before Capstan starts. When empty, Up applies
	// built-in equivalents.
	RBACFiles []string
	// UserRoleFiles are manifests with the ClusterRoles that aggregate
	// config.capstan.dev into view, edit and admin (artifacts/user-roles/*.yaml),
	// applied the same way. When empty, Up applies built-in equivalents.
	UserRoleFiles []string
	// CapstanArgs are flags given to capstan-apiserver after the deployment's,
	// for example a feature gate a test suite turns on. StartCapstan starts it
	// again with them.
	CapstanArgs []string
	// Timeout bounds Up; 3 minutes when zero.
	Timeout time.Duration
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

// Cluster is a running (or, after Down, stopped) control plane. Its exported
// fields are also the state file.
type Cluster struct {
	// WorkDir is the work folder; every path below is inside it.
	WorkDir string `json:"workDir"`
	// AdminKubeconfig authenticates to kube-apiserver as AdminUser in system:masters.
	AdminKubeconfig string `json:"adminKubeconfig"`
	// KubeAPIServerURL is https://127.0.0.1:PORT.
	KubeAPIServerURL string `json:"kubeAPIServerURL"`
	// CapstanURL is Capstan's own port, https://127.0.0.1:PORT, the port the
	// APIServices name.
	CapstanURL string `json:"capstanURL"`
	// CapstanPort is the port of CapstanURL.
	CapstanPort int `json:"capstanPort"`
	// KubeEtcdURL is kube-apiserver's etcd (TLS, client certificates
	// required, as every production control plane runs it).
	KubeEtcdURL string `json:"kubeEtcdURL"`
	// CapstanEtcdURL is Capstan's etcd (TLS, client certificates required).
	CapstanEtcdURL string `json:"capstanEtcdURL"`

	// ClusterCAFile signs kube-apiserver's serving certificate and every
	// client certificate it accepts; ClusterCAKeyFile is its key.
	ClusterCAFile    string `json:"clusterCAFile"`
	ClusterCAKeyFile string `json:"clusterCAKeyFile"`
	// FrontProxyCAFile signs the front-proxy client certificate kube-apiserver
	// presents to Capstan with the X-Remote-* headers; FrontProxyCAKeyFile
	// is its key, for tests that issue other certificates from it.
	FrontProxyCAFile         string `json:"frontProxyCAFile"`
	FrontProxyCAKeyFile      string `json:"frontProxyCAKeyFile"`
	FrontProxyClientCertFile string `json:"frontProxyClientCertFile"`
	FrontProxyClientKeyFile  string `json:"frontProxyClientKeyFile"`
	// CapstanCAFile signs Capstan's serving certificate; it is the APIServices' caBundle.
	CapstanCAFile          string `json:"capstanCAFile"`
	CapstanCAKeyFile       string `json:"capstanCAKeyFile"`
	CapstanServingCertFile string `json:"capstanServingCertFile"`
	CapstanServingKeyFile  string `json:"capstanServingKeyFile"`
	// EtcdCAFile signs Capstan's etcd's serving certificate and Capstan's
	// etcd client certificate.
	EtcdCAFile            string `json:"etcdCAFile"`
	CapstanEtcdClientCert string `json:"capstanEtcdClientCert"`
	CapstanEtcdClientKey  string `json:"capstanEtcdClientKey"`
	// KubeEtcdCAFile signs kube-apiserver's etcd's serving certificate and
	// kube-apiserver's etcd client certificate; it is not EtcdCAFile, so
	// neither etcd accepts the other's client.
	KubeEtcdCAFile     string `json:"kubeEtcdCAFile"`
	KubeEtcdClientCert string `json:"kubeEtcdClientCert"`
	KubeEtcdClientKey  string `json:"kubeEtcdClientKey"`
	// EncryptionConfigFile encrypts ConfigSets and ConfigRevisions in
	// Capstan's etcd with secretbox.
	EncryptionConfigFile string `json:"encryptionConfigFile"`
	// RBAC and UserRoles say where Capstan's RBAC and the ClusterRoles that
	// aggregate into view, edit and admin came from: files, or "built-in".
	RBAC      string `json:"rbac"`
	UserRoles string `json:"userRoles"`

	// ControllerManagerKubeconfig authenticates to kube-apiserver as
	// ControllerManagerUser, with the client certificate below.
	ControllerManagerKubeconfig string `json:"controllerManagerKubeconfig"`
	ControllerManagerClientCert string `json:"controllerManagerClientCert"`
	ControllerManagerClientKey  string `json:"controllerManagerClientKey"`
	// ControllerManagerBinary runs the controller manager's replicas.
	ControllerManagerBinary string `json:"controllerManagerBinary"`
	// ControllerManagerServingCert and Key serve its /healthz and /metrics.
	ControllerManagerServingCert string `json:"controllerManagerServingCert"`
	ControllerManagerServingKey  string `json:"controllerManagerServingKey"`

	// Detach is Options.Detach, kept for StartCapstan.
	Detach bool `json:"detach"`
	// Processes are the processes started, in start order.
	Processes []*Process `json:"processes"`

	mu sync.Mutex
}

// Up starts a cluster in opts.WorkDir and waits until both APIServices are
// Available. On failure it stops whatever it started, and the error carries
// the end of the log of the process that failed.
func Up(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.WorkDir == "" {
		return nil, errors.New("cluster: Options.WorkDir is required")
	}
	if err := opts.Binaries.Check(); err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	workDir, err := filepath.Abs(opts.WorkDir)
	if err != nil {
		return nil, err
	}
	if err := clearWorkDir(workDir); err != nil {
		return nil, err
	}
	c := &Cluster{WorkDir: workDir, Detach: opts.Detach}
	if err := c.up(ctx, opts); err != nil {
		if derr := c.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("stopping after the failure: %w", derr))
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) up(ctx context.Context, opts Options) error {
	start := time.Now()
	progress := func(format string, args ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	ports, err := ports.FreeN(7)
	if err != nil {
		return err
	}
	kubeEtcdPort, kubeEtcdPeer, capstanEtcdPort, capstanEtcdPeer, kubePort, capstanPort, kcmPort :=
		ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	c.KubeEtcdURL = "https://" + hostPort(kubeEtcdPort)
	c.CapstanEtcdURL = "https://" + hostPort(capstanEtcdPort)
	c.KubeAPIServerURL = "https://" + hostPort(kubePort)
	c.CapstanPort = capstanPort
	c.CapstanURL = "https://" + hostPort(capstanPort)

	p, err := c.writePKI()
	if err != nil {
		return err
	}
	if err := c.writeEncryptionConfig(); err != nil {
		return err
	}
	c.AdminKubeconfig = filepath.Join(c.WorkDir, AdminKubeconfigFile)
	if err := writeKubeconfig(c.AdminKubeconfig, c.KubeAPIServerURL, c.ClusterCAFile, p.adminCert, p.adminKey); err != nil {
		return err
	}
	capstanKubeconfig := filepath.Join(c.WorkDir, "kubeconfigs", "capstan.kubeconfig")
	if err := writeKubeconfig(capstanKubeconfig, c.KubeAPIServerURL, c.ClusterCAFile, p.capstanClientCert, p.capstanClientKey); err != nil {
		return err
	}
	kcmKubeconfig := filepath.Join(c.WorkDir, "kubeconfigs", "kube-controller-manager.kubeconfig")
	if err := writeKubeconfig(kcmKubeconfig, c.KubeAPIServerURL, c.ClusterCAFile, p.kcmClientCert, p.kcmClientKey); err != nil {
		return err
	}
	c.ControllerManagerKubeconfig = filepath.Join(c.WorkDir, "kubeconfigs", "capstan-controller-manager.kubeconfig")
	if err := writeKubeconfig(c.ControllerManagerKubeconfig, c.KubeAPIServerURL, c.ClusterCAFile,
		c.ControllerManagerClientCert, c.ControllerManagerClientKey); err != nil {
		return err
	}
	c.ControllerManagerBinary = opts.Binaries.ControllerManager
	c.ControllerManagerServingCert, c.ControllerManagerServingKey = p.ccmServingCert, p.ccmServingKey
	progress("certificates and kubeconfigs written to %s", c.WorkDir)

	// Both etcds start together; neither depends on the other.
	kubeEtcd, err := c.start(ProcessKubeEtcd, []string{opts.Binaries.Etcd,
		"--name=" + ProcessKubeEtcd,
		"--data-dir=" + filepath.Join(c.WorkDir, ProcessKubeEtcd),
		"--listen-client-urls=" + c.KubeEtcdURL,
		"--advertise-client-urls=" + c.KubeEtcdURL,
		"--listen-peer-urls=http://" + hostPort(kubeEtcdPeer),
		"--initial-advertise-peer-urls=http://" + hostPort(kubeEtcdPeer),
		"--initial-cluster=" + ProcessKubeEtcd + "=http://" + hostPort(kubeEtcdPeer),
		"--cert-file=" + p.kubeEtcdServingCert,
		"--key-file=" + p.kubeEtcdServingKey,
		"--trusted-ca-file=" + c.KubeEtcdCAFile,
		"--client-cert-auth",
		"--unsafe-no-fsync",
		"--log-level=warn",
	})
	if err != nil {
		return err
	}
	capstanEtcd, err := c.start(ProcessCapstanEtcd, []string{opts.Binaries.Etcd,
		"--name=" + ProcessCapstanEtcd,
		"--data-dir=" + filepath.Join(c.WorkDir, ProcessCapstanEtcd),
		"--listen-client-urls=" + c.CapstanEtcdURL,
		"--advertise-client-urls=" + c.CapstanEtcdURL,
		"--listen-peer-urls=http://" + hostPort(capstanEtcdPeer),
		"--initial-advertise-peer-urls=http://" + hostPort(capstanEtcdPeer),
		"--initial-cluster=" + ProcessCapstanEtcd + "=http://" + hostPort(capstanEtcdPeer),
		"--cert-file=" + p.etcdServingCert,
		"--key-file=" + p.etcdServingKey,
		"--trusted-ca-file=" + c.EtcdCAFile,
		"--client-cert-auth",
		"--unsafe-no-fsync",
		"--log-level=warn",
	})
	if err != nil {
		return err
	}
	kubeEtcdTLS, err := c.KubeEtcdTLS()
	if err != nil {
		return err
	}
	if err := kubeEtcd.WaitReady(ctx, etcdHealth(c.KubeEtcdURL, kubeEtcdTLS)); err != nil {
		return err
	}
	etcdTLS, err := c.CapstanEtcdTLS()
	if err != nil {
		return err
	}
	if err := capstanEtcd.WaitReady(ctx, etcdHealth(c.CapstanEtcdURL, etcdTLS)); err != nil {
		return err
	}
	progress("etcd ready: %s (kube-apiserver), %s (Capstan), both TLS with client certificates", c.KubeEtcdURL, c.CapstanEtcdURL)

	kubeAPIServer, err := c.start(ProcessKubeAPIServer, []string{opts.Binaries.KubeAPIServer,
		"--etcd-servers=" + c.KubeEtcdURL,
		"--etcd-cafile=" + c.KubeEtcdCAFile,
		"--etcd-certfile=" + c.KubeEtcdClientCert,
		"--etcd-keyfile=" + c.KubeEtcdClientKey,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(kubePort),
		"--cert-dir=" + filepath.Join(c.WorkDir, "pki", "kube-apiserver"),
		"--tls-cert-file=" + p.kubeServingCert,
		"--tls-private-key-file=" + p.kubeServingKey,
		"--client-ca-file=" + c.ClusterCAFile,
		"--requestheader-client-ca-file=" + c.FrontProxyCAFile,
		"--requestheader-allowed-names=" + FrontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-uid-headers=X-Remote-Uid",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + c.FrontProxyClientCertFile,
		"--proxy-client-key-file=" + c.FrontProxyClientKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.serviceAccountPublic,
		"--service-account-signing-key-file=" + p.serviceAccountKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=RBAC",
		"--enable-admission-plugins=NamespaceLifecycle,ValidatingAdmissionPolicy,MutatingAdmissionPolicy",
		// Without kube-proxy the aggregator must dial the Service's
		// ExternalName, not endpoints; loopback endpoints are invalid anyway.
		"--enable-aggregator-routing=false",
		"--endpoint-reconciler-type=none",
		// Open watches would otherwise hold a stop for a minute.
		"--shutdown-send-retry-after=true",
		"--profiling=false",
	})
	if err != nil {
		return err
	}
	adminTLS, err := tlsConfig(c.ClusterCAFile, p.adminCert, p.adminKey)
	if err != nil {
		return err
	}
	if err := kubeAPIServer.WaitReady(ctx, httpOK(c.KubeAPIServerURL+"/readyz", adminTLS)); err != nil {
		return err
	}
	progress("kube-apiserver ready: %s", c.KubeAPIServerURL)

	// kube-controller-manager starts beside the bootstrap below and is waited
	// for at the end; it finds Capstan's group through discovery when it is
	// registered.
	kcm, err := c.start(ProcessKubeControllerManager, []string{opts.Binaries.KubeControllerManager,
		"--kubeconfig=" + kcmKubeconfig,
		"--authentication-kubeconfig=" + kcmKubeconfig,
		"--authorization-kubeconfig=" + kcmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(kcmPort),
		"--tls-cert-file=" + p.kcmServingCert,
		"--tls-private-key-file=" + p.kcmServingKey,
		"--client-ca-file=" + c.ClusterCAFile,
		"--requestheader-client-ca-file=" + c.FrontProxyCAFile,
		"--root-ca-file=" + c.ClusterCAFile,
		"--service-account-private-key-file=" + p.serviceAccountKey,
		"--use-service-account-credentials=true",
		"--controllers=" + strings.Join(controllers, ","),
		"--leader-elect=false",
		// A quota naming a resource the controller had not yet discovered
		// (Capstan's, registered after it started) is counted at the next
		// full resync, every 5 minutes by default.
		"--resource-quota-sync-period=20s",
		"--profiling=false",
	})
	if err != nil {
		return err
	}

	admin, err := c.AdminRESTConfig()
	if err != nil {
		return err
	}
	rbac := manifestSource{files: opts.RBACFiles, builtin: builtinRBAC}
	userRoles := manifestSource{files: opts.UserRoleFiles, builtin: builtinUserRoles}
	c.RBAC, c.UserRoles = rbac.String(), userRoles.String()
	if err := c.bootstrap(ctx, admin, rbac, userRoles); err != nil {
		return fmt.Errorf("creating Capstan's namespace, Service and RBAC: %w", err)
	}
	progress("namespace %s, Service %s (ExternalName 127.0.0.1), Capstan's RBAC (%s) and user ClusterRoles (%s) applied",
		CapstanNamespace, CapstanService, c.RBAC, c.UserRoles)

	if _, err := c.start(ProcessCapstan, append([]string{opts.Binaries.Capstan,
		"--mode=aggregated",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(capstanPort),
		"--cert-dir=" + filepath.Join(c.WorkDir, "pki", "capstan"),
		"--tls-cert-file=" + c.CapstanServingCertFile,
		"--tls-private-key-file=" + c.CapstanServingKeyFile,
		"--etcd-servers=" + c.CapstanEtcdURL,
		"--etcd-cafile=" + c.EtcdCAFile,
		"--etcd-certfile=" + c.CapstanEtcdClientCert,
		"--etcd-keyfile=" + c.CapstanEtcdClientKey,
		"--encryption-provider-config=" + c.EncryptionConfigFile,
		"--kubeconfig=" + capstanKubeconfig,
		"--authentication-kubeconfig=" + capstanKubeconfig,
		"--authorization-kubeconfig=" + capstanKubeconfig,
		"--shutdown-send-retry-after=true",
	}, opts.CapstanArgs...)); err != nil {
		return err
	}
	if err := c.waitCapstanReady(ctx); err != nil {
		return err
	}
	progress("capstan-apiserver ready: %s", c.CapstanURL)

	if err := c.registerAPIServices(ctx, admin); err != nil {
		return fmt.Errorf("creating the APIServices: %w", err)
	}
	if err := c.WaitAvailable(ctx); err != nil {
		return err
	}
	if err := waitOpenAPI(ctx, admin); err != nil {
		return err
	}
	progress("APIServices %s Available, the group is in kube-apiserver's OpenAPI", apiServiceNames())
	clusterCAOnly, err := tlsConfig(c.ClusterCAFile, "", "")
	if err != nil {
		return err
	}
	if err := kcm.WaitReady(ctx, httpOK("https://"+hostPort(kcmPort)+"/healthz", clusterCAOnly)); err != nil {
		return err
	}
	progress("kube-controller-manager ready: https://%s", hostPort(kcmPort))

	if _, err := c.StartControllerManager(ctx, ProcessControllerManager); err != nil {
		return err
	}
	progress("capstan-controller-manager ready")
	return nil
}

// StartControllerManager starts a replica of capstan-controller-manager under
// the given process name, with its leader election on the default Lease and
// short lease timings so that a handover takes seconds, and waits for its /healthz.
func (c *Cluster) StartControllerManager(ctx context.Context, name string) (*Process, error) {
	ports, err := ports.FreeN(1)
	if err != nil {
		return nil, err
	}
	p, err := c.start(name, []string{c.ControllerManagerBinary,
		"--kubeconfig=" + c.ControllerManagerKubeconfig,
		"--authentication-kubeconfig=" + c.ControllerManagerKubeconfig,
		"--authorization-kubeconfig=" + c.ControllerManagerKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[0]),
		"--tls-cert-file=" + c.ControllerManagerServingCert,
		"--tls-private-key-file=" + c.ControllerManagerServingKey,
		"--leader-elect=true",
		"--leader-elect-lease-duration=" + ControllerManagerLeaseDuration.String(),
		"--leader-elect-renew-deadline=6s",
		"--leader-elect-retry-period=1s",
		"--v=2",
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	p.URL = "https://" + hostPort(ports[0])
	err = c.saveLocked()
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	clusterCAOnly, err := tlsConfig(c.ClusterCAFile, "", "")
	if err != nil {
		return nil, err
	}
	return p, p.WaitReady(ctx, httpOK(p.URL+"/healthz", clusterCAOnly))
}

// ControllerManagerLeaseDuration is the lease of the controller manager's
// replicas in the local control plane: a killed leader is replaced within it.
const ControllerManagerLeaseDuration = 8 * time.Second

// AdminRESTConfig returns a client configuration for kube-apiserver as the admin.
func (c *Cluster) AdminRESTConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
}

// Load reads the state file of a cluster that Up started in workDir, maybe
// in another process. The loaded cluster can report Status, Down and stop
// or start Capstan.
func Load(workDir string) (*Cluster, error) {
	data, err := os.ReadFile(filepath.Join(workDir, StateFile))
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(workDir, StateFile), err)
	}
	return c, nil
}

// Down stops every process the cluster started, newest first: SIGTERM, then
// SIGKILL to one that has not exited within its grace period. It signals only
// the recorded PIDs and only while they still are the processes started.
func (c *Cluster) Down() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for i := len(c.Processes) - 1; i >= 0; i-- {
		if err := c.Processes[i].Stop(stopGrace(c.Processes[i].Name)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		c.Processes = nil
	}
	if err := c.saveLocked(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stopGrace is how long a process gets to exit after SIGTERM. The servers
// drain requests first; etcd exits at once.
func stopGrace(name string) time.Duration {
	switch name {
	case ProcessKubeAPIServer, ProcessCapstan:
		return 20 * time.Second
	default:
		return 10 * time.Second
	}
}

// StopCapstan stops capstan-apiserver and leaves everything else running.
func (c *Cluster) StopCapstan() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.processLocked(ProcessCapstan)
	if p == nil {
		return errors.New("cluster: no capstan process recorded")
	}
	return p.Stop(stopGrace(ProcessCapstan))
}

// StartCapstan starts capstan-apiserver again with the command line Up used,
// on the same port, and waits until its /readyz passes. The APIServices turn
// Available again once the aggregator next checks, which WaitAvailable waits for.
func (c *Cluster) StartCapstan(ctx context.Context) error {
	c.mu.Lock()
	old := c.processLocked(ProcessCapstan)
	if old == nil {
		c.mu.Unlock()
		return errors.New("cluster: no capstan process recorded")
	}
	if old.Running() {
		c.mu.Unlock()
		return fmt.Errorf("cluster: capstan (pid %d) is still running", old.PID)
	}
	p, err := startProcess(ProcessCapstan, c.WorkDir, old.LogFile, old.Args, c.Detach)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	*old = *p
	err = c.saveLocked()
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.waitCapstanReady(ctx)
}

// Process returns the recorded process with that name, or nil.
func (c *Cluster) Process(name string) *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.processLocked(name)
}

func (c *Cluster) processLocked(name string) *Process {
	for _, p := range c.Processes {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// start starts a process with its log in logs/NAME.log and records it in the state file.
func (c *Cluster) start(name string, args []string) (*Process, error) {
	p, err := startProcess(name, c.WorkDir, filepath.Join(c.WorkDir, "logs", name+".log"), args, c.Detach)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Processes = append(c.Processes, p)
	return p, c.saveLocked()
}

func (c *Cluster) waitCapstanReady(ctx context.Context) error {
	p := c.Process(ProcessCapstan)
	caOnly, err := tlsConfig(c.CapstanCAFile, "", "")
	if err != nil {
		return err
	}
	return p.WaitReady(ctx, httpOK(c.CapstanURL+"/readyz", caOnly))
}

// saveLocked writes the state file; the caller holds c.mu.
func (c *Cluster) saveLocked() error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.WorkDir, StateFile), append(data, '\n'), 0o644)
}

// workDirEntries are what Up writes into the work folder, and all that it
// removes there before starting again.
var workDirEntries = []string{StateFile, AdminKubeconfigFile, "pki", "kubeconfigs", "logs",
	"encryption-config.yaml", ProcessKubeEtcd, ProcessCapstanEtcd}

// clearWorkDir prepares the work folder, refusing while a recorded process runs.
func clearWorkDir(dir string) error {
	if prev, err := Load(dir); err == nil {
		for _, p := range prev.Processes {
			if p.Running() {
				return fmt.Errorf("cluster: %s (pid %d) of an earlier cluster in %s still runs; stop that cluster first", p.Name, p.PID, dir)
			}
		}
	}
	for _, e := range workDirEntries {
		if err := os.RemoveAll(filepath.Join(dir, e)); err != nil {
			return err
		}
	}
	return os.MkdirAll(dir, 0o755)
}

func hostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
