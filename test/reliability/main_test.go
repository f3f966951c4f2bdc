// Package reliability tests Capstan's promises under faults, bad input,
// encryption at rest and authentication: storage semantics through the
// clientset, k8s.io/apiserver's storage suites on Capstan's storage wiring,
// fail-closed authentication, and encryption with aesgcm, secretbox and KMS v2.
// See docs/reliability.md for what each test does and what it observed.
package reliability

import (
	"fmt"
	"os"
	"testing"

	"capstan.dev/capstan/test/reliability/harness"
)

// TestMain refuses to run without the etcd binary instead of skipping: a
// missing prerequisite must fail CI, not make it silently green.
func TestMain(m *testing.M) {
	if _, err := harness.EtcdBinary(); err != nil {
		fmt.Fprintf(os.Stderr, "reliability tests need etcd: %v\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
