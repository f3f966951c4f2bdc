package local

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"capstan.dev/capstan/pkg/util/atomicfile"
)

const (
	kubeconfigClusterName = "capstan-local"
	kubeconfigContextName = "capstan-local"
	kubeconfigUserName    = AdminUser
)

// WriteKubeconfig writes a kubeconfig that talks to serverURL as the admin
// user of pki. Credentials are embedded rather than referenced by path so
// that the file keeps working when copied elsewhere or when the PKI
// directory is mounted at a different path.
//
// The file is replaced atomically because kubectl or a test may be polling
// it while the server restarts, and a half-written kubeconfig would fail
// with a confusing parse error.
func WriteKubeconfig(path, serverURL string, pki *PKI) error {
	if path == "" {
		return errors.New("kubeconfig path must not be empty")
	}
	if pki == nil {
		return errors.New("PKI must not be nil")
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return fmt.Errorf("invalid server URL %q: %w", serverURL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("server URL %q must be an absolute https URL, as the kubeconfig carries TLS credentials", serverURL)
	}
	caData, err := os.ReadFile(pki.CACertFile)
	if err != nil {
		return fmt.Errorf("reading CA certificate: %w", err)
	}
	certData, err := os.ReadFile(pki.AdminCertFile)
	if err != nil {
		return fmt.Errorf("reading admin certificate: %w", err)
	}
	keyData, err := os.ReadFile(pki.AdminKeyFile)
	if err != nil {
		return fmt.Errorf("reading admin key: %w", err)
	}

	cfg := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = serverURL
	cluster.CertificateAuthorityData = caData
	cfg.Clusters[kubeconfigClusterName] = cluster

	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData = certData
	user.ClientKeyData = keyData
	cfg.AuthInfos[kubeconfigUserName] = user

	kctx := clientcmdapi.NewContext()
	kctx.Cluster = kubeconfigClusterName
	kctx.AuthInfo = kubeconfigUserName
	kctx.Namespace = "default"
	cfg.Contexts[kubeconfigContextName] = kctx
	cfg.CurrentContext = kubeconfigContextName

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating kubeconfig directory: %w", err)
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encoding kubeconfig: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}
