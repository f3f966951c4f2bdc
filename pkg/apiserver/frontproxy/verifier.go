package frontproxy

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
)

// verifiedFor bounds how long a verified chain is believed without
// verifying it again; it never outlives a certificate of the chain.
const verifiedFor = time.Minute

// maxVerified bounds the remembered chains: kube-apiserver replicas present
// one front-proxy certificate each, renewed now and then.
const maxVerified = 64

// verifier authenticates the front proxy as k8s.io/apiserver's requestheader
// authenticator does (its client certificate chains to the requestheader CA
// and carries an allowed common name, then the X-Remote-* headers name the
// user), but remembers the chains it verified. Verifying the proxy's
// certificate costs an ECDSA or RSA signature check on every proxied request,
// although the aggregator presents the same certificate on every one of them.
//
// A remembered verification holds only while the CA bundle is the one it was
// made with (the CA content providers hand out one x509.CertPool per bundle
// they load, so a rotated bundle is a new pool), for at most verifiedFor, and
// never past the NotAfter of any certificate of the chain. The common name is
// checked against the allowed names on every request.
type verifier struct {
	options x509request.VerifyOptionFunc
	names   headerrequest.StringSliceProvider
	headers authenticator.Request
	now     func() time.Time
	// check is x509.Certificate.Verify; tests count its calls.
	check func(leaf *x509.Certificate, opts x509.VerifyOptions) ([][]*x509.Certificate, error)

	mu       sync.Mutex
	verified map[[sha256.Size]byte]verification
}

type verification struct {
	roots *x509.CertPool
	until time.Time
}

func newVerifier(options x509request.VerifyOptionFunc, names headerrequest.StringSliceProvider, headers authenticator.Request) *verifier {
	return &verifier{options: options, names: names, headers: headers, now: time.Now, check: (*x509.Certificate).Verify,
		verified: map[[sha256.Size]byte]verification{}}
}

func (v *verifier) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	opts, ok := v.options()
	if !ok {
		return nil, false, nil
	}
	chain := r.TLS.PeerCertificates
	if err := v.verify(chain, opts); err != nil {
		return nil, false, err
	}
	if names := v.names.Value(); len(names) > 0 && !slices.Contains(names, chain[0].Subject.CommonName) {
		return nil, false, fmt.Errorf("x509: subject with cn=%s is not in the allowed list", chain[0].Subject.CommonName)
	}
	return v.headers.AuthenticateRequest(r)
}

// verify checks chain against opts, or finds that it did so recently with
// the same roots.
func (v *verifier) verify(chain []*x509.Certificate, opts x509.VerifyOptions) error {
	h := sha256.New()
	for _, c := range chain {
		h.Write(c.Raw)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	now := v.now()

	v.mu.Lock()
	known, found := v.verified[key]
	v.mu.Unlock()
	if found && known.roots == opts.Roots && now.Before(known.until) {
		return nil
	}

	if opts.Intermediates == nil && len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if opts.CurrentTime.IsZero() {
		opts.CurrentTime = now
	}
	chains, err := v.check(chain[0], opts)
	if err != nil {
		return err
	}
	until := now.Add(verifiedFor)
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	v.mu.Lock()
	if len(v.verified) >= maxVerified {
		clear(v.verified)
	}
	v.verified[key] = verification{roots: opts.Roots, until: until}
	v.mu.Unlock()
	return nil
}
