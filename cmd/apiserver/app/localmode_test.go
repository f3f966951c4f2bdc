package app

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// Local mode applies --tracing-config-file as aggregated mode does: an
// invalid configuration stops the start instead of being ignored, and a
// valid one is accepted.
func TestLocalModeAppliesTracingConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config, wantErr string
	}{
		{"invalid", "samplingRatePerMillion: 2000000\n", "samplingRatePerMillion"},
		{"valid", "endpoint: 127.0.0.1:4317\nsamplingRatePerMillion: 1000000\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tracing := filepath.Join(dir, "tracing.yaml")
			content := "apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\n" + tc.config
			if err := os.WriteFile(tracing, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			_ = l.Close()

			o := NewOptions(io.Discard)
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse([]string{"--mode=local", "--data-dir=" + filepath.Join(dir, "data"),
				"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
				"--embedded-etcd-unsafe-no-fsync", "--tracing-config-file=" + tracing}); err != nil {
				t.Fatal(err)
			}
			if err := o.Complete(); err != nil {
				t.Fatal(err)
			}
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			_, cleanup, err := o.Config(t.Context())
			if cleanup != nil {
				defer cleanup()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Config: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Config: %v, want an error about %s", err, tc.wantErr)
			}
		})
	}
}
