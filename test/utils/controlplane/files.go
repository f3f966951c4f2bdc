package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"capstan.dev/capstan/pkg/util/atomicfile"
	"capstan.dev/capstan/pkg/util/pki"
)

// pkiFiles are the certificates Up issues that are not fields of Cluster.
type pkiFiles struct {
	kubeServingCert, kubeServingKey         string
	adminCert, adminKey                     string
	capstanClientCert, capstanClientKey     string
	etcdServingCert, etcdServingKey         string
	kubeEtcdServingCert, kubeEtcdServingKey string
	kcmServingCert, kcmServingKey           string
	kcmClientCert, kcmClientKey             string
	ccmServingCert, ccmServingKey           string
	serviceAccountKey, serviceAccountPublic string
}

// capstanServingLeaf is Capstan's serving certificate: the aggregator checks
// it against the caBundle with the server name <service>.<namespace>.svc,
// whatever address it dials; direct clients dial 127.0.0.1.
func capstanServingLeaf() pki.LeafSpec {
	svc := CapstanService + "." + CapstanNamespace + ".svc"
	return pki.LeafSpec{
		CommonName: svc,
		DNSNames:   []string{svc, svc + ".cluster.local", "localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
		ServerAuth: true,
	}
}

// writePKI creates four CAs (cluster, front proxy, Capstan serving, etcd)
// and the certificates each process needs, in WorkDir/pki.
func (c *Cluster) writePKI() (*pkiFiles, error) {
	dir := filepath.Join(c.WorkDir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	clusterCA, err := newAuthority(dir, "cluster-ca", "capstan-e2e-cluster-ca")
	if err != nil {
		return nil, err
	}
	frontProxyCA, err := newAuthority(dir, "front-proxy-ca", "capstan-e2e-front-proxy-ca")
	if err != nil {
		return nil, err
	}
	capstanCA, err := newAuthority(dir, "capstan-ca", "capstan-e2e-serving-ca")
	if err != nil {
		return nil, err
	}
	etcdCA, err := newAuthority(dir, "etcd-ca", "capstan-e2e-etcd-ca")
	if err != nil {
		return nil, err
	}
	kubeEtcdCA, err := newAuthority(dir, "kube-etcd-ca", "capstan-e2e-kube-etcd-ca")
	if err != nil {
		return nil, err
	}
	c.ClusterCAFile, c.ClusterCAKeyFile = clusterCA.certFile, clusterCA.keyFile
	c.FrontProxyCAFile, c.FrontProxyCAKeyFile = frontProxyCA.certFile, frontProxyCA.keyFile
	c.CapstanCAFile, c.CapstanCAKeyFile = capstanCA.certFile, capstanCA.keyFile
	c.EtcdCAFile = etcdCA.certFile
	c.KubeEtcdCAFile = kubeEtcdCA.certFile

	p := &pkiFiles{}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	issues := []struct {
		ca         *authority
		name       string
		l          pki.LeafSpec
		cert, key  *string
		descriptor string
	}{
		{clusterCA, "kube-apiserver", pki.LeafSpec{CommonName: "kube-apiserver",
			DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)}, ServerAuth: true},
			&p.kubeServingCert, &p.kubeServingKey, "kube-apiserver serving"},
		{clusterCA, "admin", pki.LeafSpec{CommonName: AdminUser, Organizations: []string{"system:masters"}, ClientAuth: true},
			&p.adminCert, &p.adminKey, "admin client"},
		{clusterCA, "capstan-client", pki.LeafSpec{CommonName: CapstanUser,
			Organizations: []string{"system:serviceaccounts", "system:serviceaccounts:" + CapstanNamespace}, ClientAuth: true},
			&p.capstanClientCert, &p.capstanClientKey, "Capstan's client"},
		{clusterCA, "kube-controller-manager", pki.LeafSpec{CommonName: "kube-controller-manager",
			DNSNames: []string{"localhost"}, IPs: loopback, ServerAuth: true},
			&p.kcmServingCert, &p.kcmServingKey, "kube-controller-manager serving"},
		{clusterCA, "kube-controller-manager-client", pki.LeafSpec{CommonName: KubeControllerManagerUser, ClientAuth: true},
			&p.kcmClientCert, &p.kcmClientKey, "kube-controller-manager's client"},
		{clusterCA, "capstan-controller-manager", pki.LeafSpec{CommonName: "capstan-controller-manager",
			DNSNames: []string{"localhost"}, IPs: loopback, ServerAuth: true},
			&p.ccmServingCert, &p.ccmServingKey, "capstan-controller-manager serving"},
		{clusterCA, "capstan-controller-manager-client", pki.LeafSpec{CommonName: ControllerManagerUser,
			Organizations: []string{"system:serviceaccounts", "system:serviceaccounts:" + CapstanNamespace}, ClientAuth: true},
			&c.ControllerManagerClientCert, &c.ControllerManagerClientKey, "capstan-controller-manager's client"},
		{frontProxyCA, "front-proxy-client", pki.LeafSpec{CommonName: FrontProxyClientName, ClientAuth: true},
			&c.FrontProxyClientCertFile, &c.FrontProxyClientKeyFile, "front proxy client"},
		{capstanCA, "capstan-serving", capstanServingLeaf(),
			&c.CapstanServingCertFile, &c.CapstanServingKeyFile, "Capstan serving"},
		{etcdCA, "etcd-serving", pki.LeafSpec{CommonName: ProcessCapstanEtcd, DNSNames: []string{"localhost"}, IPs: loopback, ServerAuth: true, ClientAuth: true},
			&p.etcdServingCert, &p.etcdServingKey, "etcd serving"},
		{etcdCA, "capstan-etcd-client", pki.LeafSpec{CommonName: "capstan", ClientAuth: true},
			&c.CapstanEtcdClientCert, &c.CapstanEtcdClientKey, "Capstan's etcd client"},
		{kubeEtcdCA, "kube-etcd-serving", pki.LeafSpec{CommonName: ProcessKubeEtcd, DNSNames: []string{"localhost"}, IPs: loopback, ServerAuth: true, ClientAuth: true},
			&p.kubeEtcdServingCert, &p.kubeEtcdServingKey, "kube-apiserver's etcd serving"},
		{kubeEtcdCA, "kube-apiserver-etcd-client", pki.LeafSpec{CommonName: "kube-apiserver-etcd-client", ClientAuth: true},
			&c.KubeEtcdClientCert, &c.KubeEtcdClientKey, "kube-apiserver's etcd client"},
	}
	for _, i := range issues {
		cert, key, err := i.ca.issue(dir, i.name, i.l)
		if err != nil {
			return nil, fmt.Errorf("issuing the %s certificate: %w", i.descriptor, err)
		}
		*i.cert, *i.key = cert, key
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	p.serviceAccountKey = filepath.Join(dir, "service-account.key")
	p.serviceAccountPublic = filepath.Join(dir, "service-account.pub")
	if err := atomicfile.WriteFile(p.serviceAccountKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(p.serviceAccountPublic, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// RotateCapstanServingCert issues a new serving certificate for Capstan from
// the same CA and writes it over the old one; Capstan is expected to pick it
// up without a restart. It returns the new certificate.
func (c *Cluster) RotateCapstanServingCert() (*x509.Certificate, error) {
	ca, err := loadAuthority(c.CapstanCAFile, c.CapstanCAKeyFile)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.WorkDir, "pki")
	certFile, keyFile, err := ca.issue(dir, "capstan-serving", capstanServingLeaf())
	if err != nil {
		return nil, err
	}
	if certFile != c.CapstanServingCertFile || keyFile != c.CapstanServingKeyFile {
		return nil, fmt.Errorf("rotated certificate written to %s, not %s", certFile, c.CapstanServingCertFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

// UserKubeconfig writes a kubeconfig for kube-apiserver that authenticates as
// user in groups, with a client certificate signed by the cluster CA, and
// returns its path. The user has no rights until RBAC grants some.
func (c *Cluster) UserKubeconfig(user string, groups ...string) (string, error) {
	if user == "" {
		return "", fmt.Errorf("cluster: a user name is required")
	}
	ca, err := loadAuthority(c.ClusterCAFile, c.ClusterCAKeyFile)
	if err != nil {
		return "", err
	}
	name := fileSafe(user)
	if len(groups) > 0 {
		name += "." + fileSafe(strings.Join(groups, "+"))
	}
	dir := filepath.Join(c.WorkDir, "pki", "users")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cert, key, err := ca.issue(dir, name, pki.LeafSpec{CommonName: user, Organizations: groups, ClientAuth: true})
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.WorkDir, "kubeconfigs", "users", name+".kubeconfig")
	return path, writeKubeconfig(path, c.KubeAPIServerURL, c.ClusterCAFile, cert, key)
}

var unsafeFileChars = regexp.MustCompile(`[^a-zA-Z0-9._-]`)

func fileSafe(s string) string {
	return unsafeFileChars.ReplaceAllString(s, "_")
}

// writeKubeconfig writes a kubeconfig with the CA and client certificate
// embedded, so that it keeps working when copied elsewhere.
func writeKubeconfig(path, server, caFile, certFile, keyFile string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	const name = "capstan-e2e"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}

// writeEncryptionConfig encrypts ConfigSets and ConfigRevisions (both hold
// secret values) with a fresh secretbox key; identity reads anything written
// before encryption was turned on.
func (c *Cluster) writeEncryptionConfig() error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	c.EncryptionConfigFile = filepath.Join(c.WorkDir, "encryption-config.yaml")
	config := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources:
  - configsets.%[1]s
  - configrevisions.%[1]s
  providers:
  - secretbox:
      keys:
      - name: key1
        secret: %[2]s
  - identity: {}
`, Group, base64.StdEncoding.EncodeToString(key))
	return atomicfile.WriteFile(c.EncryptionConfigFile, []byte(config), 0o600)
}

// CapstanEtcdTLS is Capstan's client identity for its etcd, for whoever else
// reads that etcd (its /metrics, compaction, the storage tests).
func (c *Cluster) CapstanEtcdTLS() (*tls.Config, error) {
	return tlsConfig(c.EtcdCAFile, c.CapstanEtcdClientCert, c.CapstanEtcdClientKey)
}

// KubeEtcdTLS is kube-apiserver's client identity for its etcd.
func (c *Cluster) KubeEtcdTLS() (*tls.Config, error) {
	return tlsConfig(c.KubeEtcdCAFile, c.KubeEtcdClientCert, c.KubeEtcdClientKey)
}

// tlsConfig trusts caFile and, when certFile is set, presents that client certificate.
func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// httpOK returns a readiness check that GETs url and wants a 200.
func httpOK(url string, tlsCfg *tls.Config) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

// etcdHealth returns a readiness check on etcd's /health.
func etcdHealth(url string, tlsCfg *tls.Config) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
			return fmt.Errorf("GET %s/health: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	}
}
