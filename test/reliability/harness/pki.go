package harness

import (
	"crypto/tls"
	"time"

	"capstan.dev/capstan/pkg/util/pki"
)

// CA is a certificate authority that signs client certificates for tests.
type CA struct {
	*pki.Authority
}

// NewCA generates a self-signed CA valid for a day, for example a rogue one
// the server does not trust.
func NewCA(commonName string) (*CA, error) {
	now := time.Now()
	ca, err := pki.NewAuthority(commonName, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	return &CA{ca}, nil
}

// LoadCA reads a CA certificate and key from PEM files, such as local mode's
// DataDir/pki/ca.crt and ca.key.
func LoadCA(certFile, keyFile string) (*CA, error) {
	ca, err := pki.LoadAuthority(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &CA{ca}, nil
}

// ClientCert issues a client certificate for user commonName in groups,
// valid from notBefore to notAfter (an interval in the past makes an expired one).
func (ca *CA) ClientCert(commonName string, groups []string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	leaf, err := ca.Issue(pki.LeafSpec{
		CommonName:    commonName,
		Organizations: groups,
		ClientAuth:    true,
		NotBefore:     notBefore,
		NotAfter:      notAfter,
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	return leaf.TLSCertificate(), nil
}

// ValidClientCert issues a certificate valid for the next hour.
func (ca *CA) ValidClientCert(commonName string, groups ...string) (tls.Certificate, error) {
	now := time.Now()
	return ca.ClientCert(commonName, groups, now.Add(-time.Minute), now.Add(time.Hour))
}

// ExpiredClientCert issues a certificate that expired an hour ago.
func (ca *CA) ExpiredClientCert(commonName string, groups ...string) (tls.Certificate, error) {
	now := time.Now()
	return ca.ClientCert(commonName, groups, now.Add(-48*time.Hour), now.Add(-time.Hour))
}
