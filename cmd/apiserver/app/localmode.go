package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apiserver/pkg/admission"
	admissionmetrics "k8s.io/apiserver/pkg/admission/metrics"
	"k8s.io/apiserver/pkg/authentication/request/anonymous"
	"k8s.io/apiserver/pkg/authentication/request/union"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"

	"capstan.dev/capstan/cmd/apiserver/app/local"
	"capstan.dev/capstan/pkg/admission/plugin/configpolicy"
)

// Files local mode keeps below --data-dir.
const (
	localEtcdDir = "etcd"
	localPKIDir  = "pki"
	// localEtcdPKIDir holds the embedded etcd's own CA and certificates, as
	// kubeadm keeps them in pki/etcd.
	localEtcdPKIDir       = "pki/etcd"
	localEncryptionConfig = "encryption-config.yaml"
	// LocalKubeconfig is the admin kubeconfig local mode writes into --data-dir.
	LocalKubeconfig = "kubeconfig"
)

// localPrepared is what prepareLocal made for applyLocal.
type localPrepared struct {
	pki *local.PKI
	// etcdLocation says where the data is, for the start-up message.
	etcdLocation string
}

// prepareLocal makes sure the PKI and encryption key exist in --data-dir,
// starts the embedded etcd unless --etcd-servers names one, and points the
// serving, etcd and encryption options at them. The returned cleanup stops
// the embedded etcd.
func (o *Options) prepareLocal(ctx context.Context) (*localPrepared, func(), error) {
	noop := func() {}
	r := o.Recommended
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, noop, fmt.Errorf("--data-dir: %w", err)
	}

	pki, err := local.EnsurePKI(filepath.Join(o.DataDir, localPKIDir), []string{"localhost"}, servingIPs(r.SecureServing.BindAddress))
	if err != nil {
		return nil, noop, err
	}
	r.SecureServing.ServerCert.CertKey.CertFile = pki.ServingCertFile
	r.SecureServing.ServerCert.CertKey.KeyFile = pki.ServingKeyFile

	if r.Etcd.EncryptionProviderConfigFilepath == "" {
		path := filepath.Join(o.DataDir, localEncryptionConfig)
		if _, err := local.EnsureEncryptionConfig(path, encryptedResources); err != nil {
			return nil, noop, err
		}
		r.Etcd.EncryptionProviderConfigFilepath = path
	}

	prepared := &localPrepared{pki: pki, etcdLocation: "etcd " + strings.Join(r.Etcd.StorageConfig.Transport.ServerList, ",")}
	if len(r.Etcd.StorageConfig.Transport.ServerList) > 0 {
		return prepared, noop, nil
	}
	// No --etcd-servers: run an embedded etcd with its data in --data-dir.
	etcd, err := local.StartEtcd(ctx, local.EtcdOptions{
		DataDir:       filepath.Join(o.DataDir, localEtcdDir),
		UnsafeNoFsync: o.EtcdUnsafeNoFsync,
		PKIDir:        filepath.Join(o.DataDir, localEtcdPKIDir),
	})
	if err != nil {
		return nil, noop, err
	}
	r.Etcd.StorageConfig.Transport.ServerList = etcd.Endpoints()
	r.Etcd.StorageConfig.Transport.TrustedCAFile = etcd.PKI().CACertFile
	r.Etcd.StorageConfig.Transport.CertFile = etcd.PKI().ClientCertFile
	r.Etcd.StorageConfig.Transport.KeyFile = etcd.PKI().ClientKeyFile
	prepared.etcdLocation = "embedded etcd, data in " + filepath.Join(o.DataDir, localEtcdDir)
	return prepared, etcd.Close, nil
}

// applyLocal completes the configuration the options made in local mode:
// client-certificate authentication against the local CA with an authorizer
// that admits the admin only, Capstan's own admission chain, and the admin
// kubeconfig.
func (o *Options) applyLocal(c *genericapiserver.RecommendedConfig, prepared *localPrepared) error {
	r := o.Recommended
	if err := o.applyLocalServing(c, prepared.pki); err != nil {
		return err
	}
	if err := o.applyLocalAdmission(c); err != nil {
		return err
	}

	serverURL := "https://" + net.JoinHostPort(kubeconfigHost(r.SecureServing.BindAddress), strconv.Itoa(r.SecureServing.BindPort))
	kubeconfig := filepath.Join(o.DataDir, LocalKubeconfig)
	if err := local.WriteKubeconfig(kubeconfig, serverURL, prepared.pki); err != nil {
		return err
	}
	if o.Out != nil {
		fmt.Fprintf(o.Out, "Capstan local mode: serving %s, %s\n", serverURL, prepared.etcdLocation)
		fmt.Fprintf(o.Out, "Admin kubeconfig: %s\n", kubeconfig)
		fmt.Fprintf(o.Out, "Try: kubectl --kubeconfig %s get configsets -A\n", kubeconfig)
	}
	return nil
}

// applyLocalServing sets up client-certificate authentication
// against the local CA (anonymous requests reach only the health checks), and
// the admin-only authorizer.
func (o *Options) applyLocalServing(c *genericapiserver.RecommendedConfig, pki *local.PKI) error {
	r := o.Recommended
	// A port of 0 picks a free one; the kubeconfig must name the real one.
	if r.SecureServing.BindPort == 0 && c.SecureServing != nil && c.SecureServing.Listener != nil {
		r.SecureServing.BindPort = c.SecureServing.Listener.Addr().(*net.TCPAddr).Port
	}

	caPEM, err := os.ReadFile(pki.CACertFile)
	if err != nil {
		return fmt.Errorf("reading the local CA: %w", err)
	}
	clientCA, err := dynamiccertificates.NewStaticCAContent("capstan-local-ca", caPEM)
	if err != nil {
		return fmt.Errorf("loading the local CA: %w", err)
	}
	if err := c.Authentication.ApplyClientCert(clientCA, c.SecureServing); err != nil {
		return err
	}
	// A certificate that fails verification is a 401, never a fall-through to anonymous.
	c.Authentication.Authenticator = union.NewFailOnError(
		x509request.NewDynamic(clientCA.VerifyOptions, x509request.CommonNameUserConversion),
		anonymous.NewAuthenticator(nil),
	)
	c.Authorization.Authorizer = authorizer.AuthorizerFunc(localAuthorizer{admin: local.AdminUser}.Authorize)
	return nil
}

// localAuthorizer admits the local admin and the server's own loopback client
// (group system:masters) to everything, and anyone to the health checks; it
// denies everything else.
type localAuthorizer struct {
	admin string
}

// healthPaths are reachable without credentials, so that probes and scripts
// can wait for the server.
var healthPaths = []string{"/healthz", "/livez", "/readyz"}

// Authorize implements authorizer.Authorizer.
func (a localAuthorizer) Authorize(_ context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	if u := attrs.GetUser(); u != nil && (u.GetName() == a.admin || slices.Contains(u.GetGroups(), user.SystemPrivilegedGroup)) {
		return authorizer.DecisionAllow, "", nil
	}
	// Only a clean path may match: /livez/../apis is not a health check.
	if requested := attrs.GetPath(); !attrs.IsResourceRequest() && attrs.GetVerb() == "get" && path.Clean(requested) == requested {
		for _, p := range healthPaths {
			if requested == p || strings.HasPrefix(requested, p+"/") {
				return authorizer.DecisionAllow, "", nil
			}
		}
	}
	return authorizer.DecisionDeny, fmt.Sprintf("local mode admits only %q", a.admin), nil
}

// servingIPs are the IP SANs of the local serving certificate.
func servingIPs(bind net.IP) []net.IP {
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	if bind != nil && !bind.IsUnspecified() && !bind.Equal(ips[0]) {
		ips = append(ips, bind)
	}
	return ips
}

// kubeconfigHost is the address clients dial: the bind address, or loopback
// when the server binds every interface.
func kubeconfigHost(bind net.IP) string {
	if bind == nil || bind.IsUnspecified() {
		return "127.0.0.1"
	}
	return bind.String()
}

// applyLocalAdmission builds the admission chain of local mode: the plugins of
// config.capstan.dev only, since there is no cluster for the others to read.
func (o *Options) applyLocalAdmission(c *genericapiserver.RecommendedConfig) error {
	initializers, err := o.Recommended.ExtraAdmissionInitializers(c)
	if err != nil {
		return err
	}
	plugins := admission.NewPlugins()
	configpolicy.Register(plugins)
	chain, err := plugins.NewFromPlugins(
		[]string{configpolicy.PluginName},
		noPluginConfig{},
		admission.PluginInitializers(initializers),
		admission.DecoratorFunc(admissionmetrics.WithControllerMetrics),
	)
	if err != nil {
		return err
	}
	c.AdmissionControl = admissionmetrics.WithStepMetrics(chain)
	return nil
}

// noPluginConfig gives every plugin an empty configuration.
type noPluginConfig struct{}

func (noPluginConfig) ConfigFor(string) (io.Reader, error) { return nil, nil }
