package local

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"capstan.dev/capstan/pkg/util/pki"
)

const (
	// AdminUser is the user name in the admin client certificate. It is a
	// constant so that the server can grant it access explicitly and tests
	// can assert on the identity a local kubeconfig authenticates as.
	AdminUser = "capstan-admin"

	// AdminGroup is the group in the admin client certificate. Kubernetes
	// authorizers treat system:masters as unconditionally allowed, which is
	// what a single-user local setup wants.
	AdminGroup = "system:masters"
)

// caCommonName makes the local CA recognisable in trust stores and TLS
// error messages.
const caCommonName = "capstan-local-ca"

// File names inside the PKI directory. They are fixed so that users and
// scripts can find the CA and admin credentials without reading our config.
const (
	caCertName      = "ca.crt"
	caKeyName       = "ca.key"
	servingCertName = "serving.crt"
	servingKeyName  = "serving.key"
	adminCertName   = "admin.crt"
	adminKeyName    = "admin.key"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how long before expiry a leaf is reissued, so that a
	// server started shortly before expiry does not stop working mid-run.
	renewBefore = 30 * 24 * time.Hour
	// backdate tolerates clocks that are slightly behind ours, e.g. in a VM
	// or container that has not synced yet.
	backdate = time.Hour
)

// PKI holds the paths of the local certificate authority and the
// certificates it issued, so callers can hand files to TLS and kubeconfig
// code without knowing the directory layout.
type PKI struct {
	Dir             string
	CACertFile      string
	CAKeyFile       string
	ServingCertFile string
	ServingKeyFile  string
	AdminCertFile   string
	AdminKeyFile    string
}

func newPKI(dir string) *PKI {
	return &PKI{
		Dir:             dir,
		CACertFile:      filepath.Join(dir, caCertName),
		CAKeyFile:       filepath.Join(dir, caKeyName),
		ServingCertFile: filepath.Join(dir, servingCertName),
		ServingKeyFile:  filepath.Join(dir, servingKeyName),
		AdminCertFile:   filepath.Join(dir, adminCertName),
		AdminKeyFile:    filepath.Join(dir, adminKeyName),
	}
}

// EnsurePKI makes dir hold a CA, a serving certificate for servingHosts and
// servingIPs, and an admin client certificate, reusing whatever is still
// valid so that clients that already trust the CA keep working across
// restarts. "localhost", 127.0.0.1 and ::1 are always added to the serving
// certificate because local clients connect through loopback.
//
// A leaf certificate is reissued when it is missing, unreadable, does not
// match its key, expires within 30 days, was not issued by the CA on disk or
// (serving only) lacks a requested name. The CA itself is never replaced
// once it exists: it may be pinned elsewhere (for example in an APIService
// caBundle), so an unusable CA is reported as an error instead.
func EnsurePKI(dir string, servingHosts []string, servingIPs []net.IP) (*PKI, error) {
	if dir == "" {
		return nil, errors.New("PKI directory must not be empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating PKI directory: %w", err)
	}
	p := newPKI(dir)
	now := time.Now()

	ca, err := ensureCA(caFiles{cert: p.CACertFile, key: p.CAKeyFile, commonName: caCommonName}, now)
	if err != nil {
		return nil, err
	}

	dnsNames, ips := servingNames(servingHosts, servingIPs)
	serving := leafSpec{
		certFile: p.ServingCertFile,
		keyFile:  p.ServingKeyFile,
		leaf: pki.LeafSpec{
			CommonName: "capstan-local-serving",
			DNSNames:   dnsNames,
			IPs:        ips,
			ServerAuth: true,
		},
		fits: func(c *x509.Certificate) bool {
			return coversNames(c, dnsNames, ips)
		},
	}
	admin := leafSpec{
		certFile: p.AdminCertFile,
		keyFile:  p.AdminKeyFile,
		leaf:     pki.LeafSpec{CommonName: AdminUser, Organizations: []string{AdminGroup}, ClientAuth: true},
		fits: func(c *x509.Certificate) bool {
			return c.Subject.CommonName == AdminUser &&
				slices.Equal(c.Subject.Organization, []string{AdminGroup})
		},
	}
	for _, spec := range []leafSpec{serving, admin} {
		if err := ensureLeaf(spec, ca, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// caFiles names a CA's certificate and key and the name it is created with.
type caFiles struct {
	cert, key, commonName string
}

// ensureCA loads the CA or creates one when none exists. The certificate is
// the commit point: it is written after the key, so a key without a
// certificate can only be a leftover from an interrupted first run and is
// safely overwritten.
func ensureCA(p caFiles, now time.Time) (*pki.Authority, error) {
	certPEM, err := os.ReadFile(p.cert)
	if errors.Is(err, fs.ErrNotExist) {
		return createCA(p, now)
	}
	if err != nil {
		return nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("CA certificate %s exists but its key %s does not; restore the key or remove both to create a new CA", p.cert, p.key)
	}
	if err != nil {
		return nil, fmt.Errorf("reading CA key: %w", err)
	}
	cert, key, err := pki.ParsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading CA from %s: %w", filepath.Dir(p.cert), err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%s is not a CA certificate", p.cert)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("CA certificate %s is not allowed to sign certificates", p.cert)
	}
	if now.Before(cert.NotBefore) || !now.Add(renewBefore).Before(cert.NotAfter) {
		return nil, fmt.Errorf("CA certificate %s is valid from %s to %s, which does not cover the next %s; remove %s and %s to create a new CA (clients that trust the old one must be updated)",
			p.cert, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), renewBefore, p.cert, p.key)
	}
	return &pki.Authority{Cert: cert, Key: key}, nil
}

func createCA(p caFiles, now time.Time) (*pki.Authority, error) {
	ca, err := pki.NewAuthority(p.commonName, now.Add(-backdate), now.Add(caValidity))
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	if err := ca.WriteFiles(p.cert, p.key); err != nil {
		return nil, err
	}
	return ca, nil
}

// leafSpec describes a certificate issued by the local CA and what makes an
// existing one still acceptable.
type leafSpec struct {
	certFile, keyFile string
	// leaf is the identity and usages of the certificate; its validity is
	// filled in by issueLeaf.
	leaf pki.LeafSpec
	// fits reports whether an existing certificate carries the identity
	// that leaf would produce now.
	fits func(*x509.Certificate) bool
}

func ensureLeaf(spec leafSpec, ca *pki.Authority, now time.Time) error {
	ok, err := leafUsable(spec, ca.Cert, now)
	if err != nil || ok {
		return err
	}
	return issueLeaf(spec, ca, now)
}

// leafUsable reports whether the certificate on disk can be kept. Files
// that exist but cannot be parsed are not an error: they are ours to
// replace. Only I/O failures are, since overwriting might not work either
// and hiding them would make the real problem harder to find.
func leafUsable(spec leafSpec, caCert *x509.Certificate, now time.Time) (bool, error) {
	certPEM, err := os.ReadFile(spec.certFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", spec.certFile, err)
	}
	keyPEM, err := os.ReadFile(spec.keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", spec.keyFile, err)
	}
	cert, _, err := pki.ParsePair(certPEM, keyPEM)
	if err != nil {
		return false, nil
	}
	if !now.Add(renewBefore).Before(cert.NotAfter) {
		return false, nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   spec.leaf.ExtKeyUsages(),
	}); err != nil {
		return false, nil
	}
	return spec.fits(cert), nil
}

func issueLeaf(spec leafSpec, ca *pki.Authority, now time.Time) error {
	l := spec.leaf
	l.NotBefore = now.Add(-backdate)
	// A leaf outliving its issuer would only fail verification later with
	// a less obvious error.
	l.NotAfter = now.Add(leafValidity)
	if l.NotAfter.After(ca.Cert.NotAfter) {
		l.NotAfter = ca.Cert.NotAfter
	}
	leaf, err := ca.Issue(l)
	if err != nil {
		return fmt.Errorf("issuing %s: %w", spec.certFile, err)
	}
	return leaf.WriteFiles(spec.certFile, spec.keyFile)
}

// servingNames returns the SANs the serving certificate must carry. Hosts
// that are really IP literals are moved to the IP list, because a DNS SAN
// "10.0.0.1" would not match a client connecting to that address.
func servingNames(hosts []string, ips []net.IP) ([]string, []net.IP) {
	dnsNames := []string{"localhost"}
	allIPs := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	addIP := func(ip net.IP) {
		if ip == nil || slices.ContainsFunc(allIPs, ip.Equal) {
			return
		}
		allIPs = append(allIPs, ip)
	}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			addIP(ip)
			continue
		}
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	for _, ip := range ips {
		addIP(ip)
	}
	return dnsNames, allIPs
}

func coversNames(c *x509.Certificate, dnsNames []string, ips []net.IP) bool {
	for _, want := range dnsNames {
		if !slices.ContainsFunc(c.DNSNames, func(have string) bool { return strings.EqualFold(have, want) }) {
			return false
		}
	}
	for _, want := range ips {
		if !slices.ContainsFunc(c.IPAddresses, want.Equal) {
			return false
		}
	}
	return true
}

// EtcdPKI is the embedded etcd's own certificate authority and the
// certificates it issued: etcd's serving certificate (also its peer
// certificate) and the API server's client certificate. It is separate from
// the API server's CA, so that no client certificate of the API server opens
// etcd, which holds every object behind the authorizer's back.
type EtcdPKI struct {
	CACertFile     string
	CAKeyFile      string
	ServerCertFile string
	ServerKeyFile  string
	ClientCertFile string
	ClientKeyFile  string
}

// The names in the embedded etcd's certificates.
const (
	etcdCACommonName     = "capstan-local-etcd-ca"
	etcdClientCommonName = "capstan-apiserver-etcd-client"
)

// EnsureEtcdPKI makes dir hold the embedded etcd's CA, its serving
// certificate for 127.0.0.1 and localhost, and the API server's client
// certificate, reusing what is still valid as EnsurePKI does.
func EnsureEtcdPKI(dir string) (*EtcdPKI, error) {
	if dir == "" {
		return nil, errors.New("etcd PKI directory must not be empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating etcd PKI directory: %w", err)
	}
	p := &EtcdPKI{
		CACertFile:     filepath.Join(dir, "ca.crt"),
		CAKeyFile:      filepath.Join(dir, "ca.key"),
		ServerCertFile: filepath.Join(dir, "server.crt"),
		ServerKeyFile:  filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "apiserver-etcd-client.crt"),
		ClientKeyFile:  filepath.Join(dir, "apiserver-etcd-client.key"),
	}
	now := time.Now()
	ca, err := ensureCA(caFiles{cert: p.CACertFile, key: p.CAKeyFile, commonName: etcdCACommonName}, now)
	if err != nil {
		return nil, err
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	server := leafSpec{
		certFile: p.ServerCertFile,
		keyFile:  p.ServerKeyFile,
		leaf: pki.LeafSpec{
			CommonName: "capstan-local-etcd",
			DNSNames:   []string{"localhost"},
			IPs:        loopback,
			// Serving clients, and the member's peer listener both ways.
			ServerAuth: true,
			ClientAuth: true,
		},
		fits: func(c *x509.Certificate) bool { return coversNames(c, []string{"localhost"}, loopback) },
	}
	client := leafSpec{
		certFile: p.ClientCertFile,
		keyFile:  p.ClientKeyFile,
		leaf:     pki.LeafSpec{CommonName: etcdClientCommonName, ClientAuth: true},
		fits:     func(c *x509.Certificate) bool { return c.Subject.CommonName == etcdClientCommonName },
	}
	for _, spec := range []leafSpec{server, client} {
		if err := ensureLeaf(spec, ca, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}
