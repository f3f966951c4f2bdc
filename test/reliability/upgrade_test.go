package reliability

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	restclient "k8s.io/client-go/rest"

	"capstan.dev/capstan/test/reliability/harness"
)

// upgradeFromEnv names the commit TestRollingUpgradeUnderLoad upgrades from.
const upgradeFromEnv = "CAPSTAN_UPGRADE_FROM"

// TestRollingUpgradeUnderLoad: two replicas behind one address (a balancer
// that, like a Service, sends new connections only to replicas whose /readyz
// passes), built from the previous commit, upgraded one at a time to this
// build while the load runs through that address. Each replica gets SIGTERM
// with a shutdown delay, as a Deployment's rolling update does, and is
// started again on the new binary. No request may fail beyond the retryable
// ones (5xx, 429), and afterwards nothing acknowledged is lost and no
// revision is missing.
func TestRollingUpgradeUnderLoad(t *testing.T) {
	const shutdownDelay = 3 * time.Second
	from := os.Getenv(upgradeFromEnv)
	if from == "" {
		from = "HEAD~1"
	}
	previous, err := harness.CapstanBinaryAt(from)
	if err != nil {
		t.Fatalf("building the version to upgrade from (%s=%s): %v", upgradeFromEnv, from, err)
	}
	current, err := harness.CapstanBinary()
	if err != nil {
		t.Fatal(err)
	}

	etcd := harness.StartEtcd(t, harness.EtcdOptions{UnsafeNoFsync: true})
	// One data folder: both replicas serve the same certificate and share
	// the encryption key, as replicas of one Deployment share Secrets.
	dataDir := t.TempDir()
	var replicas []*harness.Capstan
	for range 2 {
		replicas = append(replicas, harness.StartCapstan(t, harness.CapstanOptions{
			DataDir:     dataDir,
			EtcdServers: []string{etcd.Endpoint()},
			Binary:      previous,
			Args: []string{"--request-timeout=" + faultRequestTimeout.String(), "--history-repair-grace-period=2s",
				"--shutdown-delay-duration=" + shutdownDelay.String()},
		}))
	}
	lb := harness.StartBalancer(t, replicas...)
	cfg, err := replicas[0].ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host = "https://" + lb.Addr()

	l := newLoad(t, loadOptions{namespace: "upgrade", requestTimeout: faultRequestTimeout, configs: []*restclient.Config{cfg}})
	l.Start()
	time.Sleep(3 * time.Second)

	for i, c := range replicas {
		before := l.Acked()
		termAt := time.Now()
		if err := c.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Exited():
		case <-time.After(shutdownDelay + faultRequestTimeout + 30*time.Second):
			t.Fatalf("replica %d still running %v after SIGTERM", i, time.Since(termAt).Round(time.Millisecond))
		}
		if code := c.ExitCode(); code != 0 {
			t.Errorf("replica %d exited with %d after SIGTERM, want 0", i, code)
		}
		exitedAfter := time.Since(termAt)
		c.SetBinary(current)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !lb.Ready(i) {
			if time.Now().After(deadline) {
				t.Fatalf("the balancer did not see replica %d ready", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("replica %d: exited %v after SIGTERM, serving the new build %v after SIGTERM; %d writes acknowledged meanwhile",
			i, exitedAfter.Round(time.Millisecond), time.Since(termAt).Round(time.Millisecond), l.Acked()-before)
		time.Sleep(3 * time.Second)
	}
	l.Verify(context.Background(), t, cfg)
}
