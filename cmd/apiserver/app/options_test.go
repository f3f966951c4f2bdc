package app

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// Port 0 turns secure serving off in k8s.io/apiserver, which left Capstan
// without a loopback client and crashed it at startup; it is refused with a
// message instead.
func TestValidateRefusesSecureServingOff(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--mode=local", "--secure-port=0"}, "--secure-port must be between 1 and 65535, not 0"},
		{[]string{"--mode=local", "--secure-port=-1"}, "--secure-port must be between 1 and 65535, not -1"},
		{[]string{"--mode=aggregated", "--secure-port=0", "--etcd-servers=http://127.0.0.1:2379"}, "--secure-port must be between 1 and 65535, not 0"},
		{[]string{"--mode=local", "--secure-port=9443"}, ""},
	} {
		o := NewOptions(nil)
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := o.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.wantErr)
		}
	}
}
