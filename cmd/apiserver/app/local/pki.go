package local

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/util/keyutil"
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

	caCert, caKey, err := ensureCA(caFiles{cert: p.CACertFile, key: p.CAKeyFile, commonName: caCommonName}, now)
	if err != nil {
		return nil, err
	}

	dnsNames, ips := servingNames(servingHosts, servingIPs)
	serving := leafSpec{
		certFile: p.ServingCertFile,
		keyFile:  p.ServingKeyFile,
		usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		template: func() *x509.Certificate {
			return &x509.Certificate{
				Subject:     pkix.Name{CommonName: "capstan-local-serving"},
				DNSNames:    dnsNames,
				IPAddresses: ips,
			}
		},
		fits: func(c *x509.Certificate) bool {
			return coversNames(c, dnsNames, ips)
		},
	}
	admin := leafSpec{
		certFile: p.AdminCertFile,
		keyFile:  p.AdminKeyFile,
		usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		template: func() *x509.Certificate {
			return &x509.Certificate{
				Subject: pkix.Name{CommonName: AdminUser, Organization: []string{AdminGroup}},
			}
		},
		fits: func(c *x509.Certificate) bool {
			return c.Subject.CommonName == AdminUser &&
				slices.Equal(c.Subject.Organization, []string{AdminGroup})
		},
	}
	for _, spec := range []leafSpec{serving, admin} {
		if err := ensureLeaf(spec, caCert, caKey, now); err != nil {
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
func ensureCA(p caFiles, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(p.cert)
	if errors.Is(err, fs.ErrNotExist) {
		return createCA(p, now)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("CA certificate %s exists but its key %s does not; restore the key or remove both to create a new CA", p.cert, p.key)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading CA key: %w", err)
	}
	cert, key, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("loading CA from %s: %w", filepath.Dir(p.cert), err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", p.cert)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("CA certificate %s is not allowed to sign certificates", p.cert)
	}
	if now.Before(cert.NotBefore) || !now.Add(renewBefore).Before(cert.NotAfter) {
		return nil, nil, fmt.Errorf("CA certificate %s is valid from %s to %s, which does not cover the next %s; remove %s and %s to create a new CA (clients that trust the old one must be updated)",
			p.cert, cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339), renewBefore, p.cert, p.key)
	}
	return cert, key, nil
}

func createCA(p caFiles, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: p.commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	if err := writePair(p.cert, p.key, der, key); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// leafSpec describes a certificate issued by the local CA and what makes an
// existing one still acceptable.
type leafSpec struct {
	certFile, keyFile string
	usages            []x509.ExtKeyUsage
	// template returns the identity part of the certificate; validity,
	// serial and usages are filled in by issueLeaf.
	template func() *x509.Certificate
	// fits reports whether an existing certificate carries the identity
	// that template would produce now.
	fits func(*x509.Certificate) bool
}

func ensureLeaf(spec leafSpec, caCert *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	ok, err := leafUsable(spec, caCert, now)
	if err != nil || ok {
		return err
	}
	return issueLeaf(spec, caCert, caKey, now)
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
	cert, _, err := parsePair(certPEM, keyPEM)
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
		KeyUsages:   spec.usages,
	}); err != nil {
		return false, nil
	}
	return spec.fits(cert), nil
}

func issueLeaf(spec leafSpec, caCert *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating key for %s: %w", spec.certFile, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	tmpl := spec.template()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(leafValidity)
	// A leaf outliving its issuer would only fail verification later with
	// a less obvious error.
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = spec.usages
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("signing %s: %w", spec.certFile, err)
	}
	return writePair(spec.certFile, spec.keyFile, der, key)
}

// writePair writes the key before the certificate so that an interrupted
// write leaves a certificate that does not match its key (and is therefore
// reissued) rather than a certificate whose key was lost.
func writePair(certFile, keyFile string, certDER []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key for %s: %w", certFile, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: keyutil.ECPrivateKeyBlockType, Bytes: keyDER})
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	return writeFileAtomic(certFile, certPEM, 0o644)
}

// parsePair accepts any key format client-go understands so that a CA
// supplied by the user (for example an RSA key in PKCS#8) can be reused.
func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New("certificate file does not contain a PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing certificate: %w", err)
	}
	parsed, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing private key: %w", err)
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("private key of type %T cannot sign", parsed)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, errors.New("private key does not match certificate")
	}
	return cert, key, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	// Zero is not a valid serial number (RFC 5280, section 4.1.2.2).
	return serial.Add(serial, big.NewInt(1)), nil
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
	caCert, caKey, err := ensureCA(caFiles{cert: p.CACertFile, key: p.CAKeyFile, commonName: etcdCACommonName}, now)
	if err != nil {
		return nil, err
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	server := leafSpec{
		certFile: p.ServerCertFile,
		keyFile:  p.ServerKeyFile,
		// Serving clients, and the member's peer listener both ways.
		usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		template: func() *x509.Certificate {
			return &x509.Certificate{
				Subject:     pkix.Name{CommonName: "capstan-local-etcd"},
				DNSNames:    []string{"localhost"},
				IPAddresses: loopback,
			}
		},
		fits: func(c *x509.Certificate) bool { return coversNames(c, []string{"localhost"}, loopback) },
	}
	client := leafSpec{
		certFile: p.ClientCertFile,
		keyFile:  p.ClientKeyFile,
		usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		template: func() *x509.Certificate {
			return &x509.Certificate{Subject: pkix.Name{CommonName: etcdClientCommonName}}
		},
		fits: func(c *x509.Certificate) bool { return c.Subject.CommonName == etcdClientCommonName },
	}
	for _, spec := range []leafSpec{server, client} {
		if err := ensureLeaf(spec, caCert, caKey, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}
