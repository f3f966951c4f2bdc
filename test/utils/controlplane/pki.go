package controlplane

import (
	"path/filepath"
	"time"

	"capstan.dev/capstan/pkg/util/pki"
)

// certValidity is long enough for a development cluster that stays up for
// weeks and short enough that nobody mistakes these certificates for real ones.
const certValidity = 90 * 24 * time.Hour

// authority is a certificate authority whose key lives in the work folder, so
// that a later process (UserKubeconfig after Load, a certificate rotation) can
// still issue certificates.
type authority struct {
	*pki.Authority
	certFile string
	keyFile  string
}

// newAuthority creates a CA named name in dir (name.crt, name.key).
func newAuthority(dir, name, commonName string) (*authority, error) {
	now := time.Now()
	ca, err := pki.NewAuthority(commonName, now.Add(-time.Hour), now.Add(certValidity))
	if err != nil {
		return nil, err
	}
	a := &authority{
		Authority: ca,
		certFile:  filepath.Join(dir, name+".crt"),
		keyFile:   filepath.Join(dir, name+".key"),
	}
	if err := a.WriteFiles(a.certFile, a.keyFile); err != nil {
		return nil, err
	}
	return a, nil
}

// loadAuthority reads a CA that newAuthority wrote.
func loadAuthority(certFile, keyFile string) (*authority, error) {
	ca, err := pki.LoadAuthority(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &authority{Authority: ca, certFile: certFile, keyFile: keyFile}, nil
}

// issue signs a certificate for l, valid for certValidity from now, and
// writes it to dir as name.crt and name.key.
func (a *authority) issue(dir, name string, l pki.LeafSpec) (certFile, keyFile string, err error) {
	now := time.Now()
	l.NotBefore, l.NotAfter = now.Add(-time.Hour), now.Add(certValidity)
	leaf, err := a.Issue(l)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	return certFile, keyFile, leaf.WriteFiles(certFile, keyFile)
}
