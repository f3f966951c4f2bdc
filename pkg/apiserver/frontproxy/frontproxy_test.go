package frontproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// fixed answers every request the same way.
type fixed struct{ ok bool }

func (f fixed) AuthenticateRequest(*http.Request) (*authenticator.Response, bool, error) {
	if !f.ok {
		return nil, false, nil
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: "jane"}}, true, nil
}

func TestOnlyFrontProxiedRequestsSkipTheDelegate(t *testing.T) {
	var asked int
	delegate := authorizer.AuthorizerFunc(func(context.Context, authorizer.Attributes) (authorizer.Decision, string, error) {
		asked++
		return authorizer.DecisionDeny, "denied by the delegate", nil
	})
	authz := authorizerFunc(delegate)

	for _, tc := range []struct {
		name          string
		proxyAccepts  bool
		wantDecision  authorizer.Decision
		wantDelegated int
	}{
		{"the front proxy authenticated it", true, authorizer.DecisionAllow, 0},
		{"someone else authenticated it", false, authorizer.DecisionDeny, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked = 0
			var decision authorizer.Decision
			h := withMark(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, _, err := (marking{fixed{tc.proxyAccepts}}).AuthenticateRequest(r); err != nil {
					t.Fatal(err)
				}
				decision, _, _ = authz.Authorize(r.Context(), authorizer.AttributesRecord{Verb: "create"})
			}))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/apis/config.capstan.dev/v1beta1/namespaces/a/configsets", nil))
			if decision != tc.wantDecision || asked != tc.wantDelegated {
				t.Errorf("decision %v after %d delegate calls, want %v after %d", decision, asked, tc.wantDecision, tc.wantDelegated)
			}
		})
	}

	t.Run("a context without the mark", func(t *testing.T) {
		asked = 0
		if d, _, _ := authz.Authorize(context.Background(), authorizer.AttributesRecord{Verb: "get"}); d != authorizer.DecisionDeny || asked != 1 {
			t.Errorf("decision %v after %d delegate calls, want deny after 1", d, asked)
		}
	})
}
