// Package pki holds the certificate primitives that local mode and the test
// control planes share: a certificate authority (created in memory, loaded
// from PEM files, written to files), leaf certificates issued from a
// LeafSpec, and their PEM encoding. Keys are ECDSA P-256. What to issue,
// for how long and when to reissue is the callers' policy.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"k8s.io/client-go/util/keyutil"

	"capstan.dev/capstan/pkg/util/atomicfile"
)

// Authority is a certificate authority: its certificate and the key that
// signs what it issues.
type Authority struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewAuthority creates a self-signed CA named commonName, valid from
// notBefore to notAfter, in memory; WriteFiles stores it.
func NewAuthority(commonName string, notBefore, notAfter time.Time) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the key of CA %s: %w", commonName, err)
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate of CA %s: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate of CA %s: %w", commonName, err)
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// LoadAuthority reads a CA certificate and its key from PEM files, such as
// those WriteFiles writes. The key may be in any format client-go parses.
func LoadAuthority(certFile, keyFile string) (*Authority, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cert, key, err := ParsePair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading CA %s: %w", certFile, err)
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// WriteFiles writes the CA certificate and key as WritePair does.
func (a *Authority) WriteFiles(certFile, keyFile string) error {
	return WritePair(certFile, keyFile, a.Cert.Raw, a.Key)
}

// CertPEM is the CA certificate in PEM form, for a trust bundle.
func (a *Authority) CertPEM() []byte {
	return EncodeCertPEM(a.Cert.Raw)
}

// LeafSpec describes a certificate for an Authority to issue.
type LeafSpec struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPs           []net.IP
	ServerAuth    bool
	ClientAuth    bool
	// NotBefore and NotAfter bound its validity; a window in the past
	// makes an expired certificate.
	NotBefore, NotAfter time.Time
}

// ExtKeyUsages are the extended key usages the spec asks for, server
// authentication first.
func (s LeafSpec) ExtKeyUsages() []x509.ExtKeyUsage {
	var usages []x509.ExtKeyUsage
	if s.ServerAuth {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if s.ClientAuth {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	return usages
}

// Leaf is an issued certificate and its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issue signs a new certificate for s with a fresh key.
func (a *Authority) Issue(s LeafSpec) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the key for %s: %w", s.CommonName, err)
	}
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.CommonName, Organization: s.Organizations},
		DNSNames:              s.DNSNames,
		IPAddresses:           s.IPs,
		NotBefore:             s.NotBefore,
		NotAfter:              s.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           s.ExtKeyUsages(),
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, key.Public(), a.Key)
	if err != nil {
		return nil, fmt.Errorf("signing the certificate for %s: %w", s.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate for %s: %w", s.CommonName, err)
	}
	return &Leaf{Cert: cert, Key: key}, nil
}

// WriteFiles writes the certificate and key as WritePair does.
func (l *Leaf) WriteFiles(certFile, keyFile string) error {
	return WritePair(certFile, keyFile, l.Cert.Raw, l.Key)
}

// TLSCertificate is the leaf for a tls.Config.
func (l *Leaf) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
}

// WritePair writes a certificate (mode 0644) and its key (mode 0600) as PEM,
// each through a rename, so that a server watching the files never reads
// half a file. The key goes first: a reader that sees the new certificate
// finds its key already in place, and an interrupted write leaves a
// certificate that does not match its key (and is therefore reissued)
// rather than a certificate whose key was lost.
func WritePair(certFile, keyFile string, certDER []byte, key crypto.Signer) error {
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return fmt.Errorf("encoding the key for %s: %w", certFile, err)
	}
	if err := atomicfile.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(certFile, EncodeCertPEM(certDER), 0o644)
}

// EncodeCertPEM is a DER certificate as a PEM CERTIFICATE block.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// EncodeKeyPEM encodes an ECDSA key as an EC PRIVATE KEY block and any
// other key as PKCS #8.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	if ec, ok := key.(*ecdsa.PrivateKey); ok {
		der, err := x509.MarshalECPrivateKey(ec)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: keyutil.ECPrivateKeyBlockType, Bytes: der}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: keyutil.PrivateKeyBlockType, Bytes: der}), nil
}

// ParsePair parses a PEM certificate and its key and checks that they
// belong together. It accepts any key format client-go understands so that
// a CA supplied by the user (for example an RSA key in PKCS #8) can be used.
func ParsePair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
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

// RandomSerial is a random, positive 128-bit certificate serial number.
func RandomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	// Zero is not a valid serial number (RFC 5280, section 4.1.2.2).
	return serial.Add(serial, big.NewInt(1)), nil
}
