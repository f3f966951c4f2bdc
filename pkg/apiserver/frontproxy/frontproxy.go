// Package frontproxy lets aggregated Capstan trust the authorization
// kube-apiserver already performed for a request it proxied.
//
// kube-apiserver authenticates, authorizes (RBAC) and applies priority and
// fairness to every request for config.capstan.dev before its aggregator
// proxies it to Capstan, presenting the front-proxy client certificate and
// the user in X-Remote-* headers. k8s.io/apiserver's delegated authorization
// would then ask kube-apiserver the same question again with a
// SubjectAccessReview: for requests that name an object, whose attributes
// differ with every name, that is one more round trip to kube-apiserver and
// one more RBAC evaluation per request.
//
// Capstan skips that second question, and only that one: a request whose
// identity came from the front proxy's headers is allowed by the handler
// chain's authorization filter, because kube-apiserver authorized exactly
// these attributes before proxying. Anyone else (a client certificate or token
// presented to Capstan directly, headers without the front-proxy
// certificate) is authorized by SubjectAccessReview as before, and so is every
// check Capstan makes itself with other attributes (rollback and status
// requiring get on the ConfigSet), since those go to the unwrapped authorizer.
//
// This widens nothing: the front proxy can already assert any user and group,
// system:masters included, which delegated authorization always allows.
package frontproxy

import (
	"context"
	"net/http"
	"sync/atomic"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authentication/request/union"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	genericapiserver "k8s.io/apiserver/pkg/server"
)

// Reason is the authorization decision's reason for a proxied request.
const Reason = "authorized by kube-apiserver before its aggregator proxied the request"

type markKey struct{}

// mark records, for one request, whether the front proxy authenticated it.
// The handler chain adds it before authentication; the authenticator, which
// sees the request but cannot change its context, sets it.
type mark struct{ proxied atomic.Bool }

// Proxied reports whether the request of ctx was authenticated by the front
// proxy's certificate and headers.
func Proxied(ctx context.Context) bool {
	m, ok := ctx.Value(markKey{}).(*mark)
	return ok && m.proxied.Load()
}

// withMark gives every request an unset mark.
func withMark(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), markKey{}, &mark{})))
	})
}

// marking sets the mark of requests the front-proxy authenticator accepts.
type marking struct{ authenticator.Request }

func (m marking) AuthenticateRequest(r *http.Request) (*authenticator.Response, bool, error) {
	resp, ok, err := m.Request.AuthenticateRequest(r)
	if ok && err == nil {
		if mk, found := r.Context().Value(markKey{}).(*mark); found {
			mk.proxied.Store(true)
		}
	}
	return resp, ok, err
}

// authorizerFunc allows marked requests and asks delegate about the rest.
func authorizerFunc(delegate authorizer.Authorizer) authorizer.Authorizer {
	return authorizer.AuthorizerFunc(func(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
		if Proxied(ctx) {
			return authorizer.DecisionAllow, Reason, nil
		}
		return delegate.Authorize(ctx, a)
	})
}

// Apply puts the front-proxy trust in place on a configuration to which the
// delegating authentication and authorization options have been applied. It
// does nothing when no front proxy is configured.
func Apply(c *genericapiserver.Config) {
	rh := c.Authentication.RequestHeaderConfig
	if rh == nil || c.Authentication.Authenticator == nil || c.Authorization.Authorizer == nil {
		return
	}
	// The authenticator the delegating one starts with, built again so that
	// its successes can be told apart, and with its certificate verifications
	// remembered; it adds system:authenticated as the delegating one does.
	// Front-proxied requests stop here; for the others it is one failed
	// certificate verification more.
	proxy := newVerifier(rh.CAContentProvider.VerifyOptions, rh.AllowedClientNames,
		headerrequest.NewDynamic(rh.UsernameHeaders, rh.UIDHeaders, rh.GroupHeaders, rh.ExtraHeaderPrefixes))
	c.Authentication.Authenticator = union.New(group.NewAuthenticatedGroupAdder(marking{proxy}), c.Authentication.Authenticator)

	build := c.BuildHandlerChainFunc
	c.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		// Only the chain's authorization (and impersonation) filters see the
		// trusting authorizer; c keeps the delegating one for everything
		// else, Capstan's own checks included.
		delegate := c.Authorization.Authorizer
		c.Authorization.Authorizer = authorizerFunc(delegate)
		defer func() { c.Authorization.Authorizer = delegate }()
		return withMark(build(h, c))
	}
}
