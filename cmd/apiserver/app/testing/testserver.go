// Package testing starts an in-process Capstan in local mode for tests: its own
// embedded etcd in a temporary folder, a free loopback port, and an admin
// client configuration.
package testing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"capstan.dev/capstan/cmd/apiserver/app"
	"capstan.dev/capstan/pkg/apiserver"
)

// TestServer is a running in-process Capstan.
type TestServer struct {
	// ClientConfig authenticates as the local admin.
	ClientConfig *restclient.Config
	// DataDir holds the etcd data, PKI, encryption config and kubeconfig.
	DataDir string
	// Kubeconfig is the admin kubeconfig file, for kubectl.
	Kubeconfig string
	// EtcdEndpoints reach the embedded etcd directly, to inspect stored
	// bytes, with EtcdTLS's client certificate.
	EtcdEndpoints []string
	EtcdTLS       transport.TLSInfo
	// Server gives in-process access to the stores.
	Server *apiserver.CapstanServer
	// TearDown stops the server and its etcd and waits for both.
	TearDown func()
}

// StartTestServer starts Capstan in local mode with the given extra flags and
// returns once /readyz passes. The caller must call TearDown; it is also
// registered with t.Cleanup, and calling it twice is harmless.
func StartTestServer(t testing.TB, flags ...string) *TestServer {
	t.Helper()
	dataDir := t.TempDir()
	ts, err := start(dataDir, flags)
	if err != nil {
		t.Fatalf("starting capstan: %v", err)
	}
	t.Cleanup(ts.TearDown)
	return ts
}

func start(dataDir string, flags []string) (*TestServer, error) {
	o := app.NewOptions(nil)
	fs := pflag.NewFlagSet("capstan-test", pflag.ContinueOnError)
	o.AddFlags(fs)
	args := append([]string{"--mode=local", "--data-dir=" + dataDir, "--embedded-etcd-unsafe-no-fsync"}, flags...)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o.Recommended.SecureServing.Listener = listener
	o.Recommended.SecureServing.BindPort = 0
	if err := o.Complete(); err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	cfg, cleanup, err := o.Config(ctx)
	if err != nil {
		cancel()
		cleanup()
		return nil, err
	}
	server, err := cfg.Complete().New()
	if err != nil {
		cancel()
		cleanup()
		return nil, err
	}

	stopped := make(chan error, 1)
	go func() {
		stopped <- server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
	}()
	var once sync.Once
	tearDown := func() {
		once.Do(func() {
			cancel()
			select {
			case <-stopped:
			case <-time.After(2 * time.Minute):
			}
			cleanup()
		})
	}

	kubeconfig := filepath.Join(dataDir, app.LocalKubeconfig)
	clientConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		tearDown()
		return nil, err
	}
	clientConfig.QPS = -1
	if err := waitReady(clientConfig, stopped); err != nil {
		tearDown()
		return nil, err
	}
	return &TestServer{
		ClientConfig:  clientConfig,
		DataDir:       dataDir,
		Kubeconfig:    kubeconfig,
		EtcdEndpoints: o.Recommended.Etcd.StorageConfig.Transport.ServerList,
		EtcdTLS: transport.TLSInfo{
			CertFile:      o.Recommended.Etcd.StorageConfig.Transport.CertFile,
			KeyFile:       o.Recommended.Etcd.StorageConfig.Transport.KeyFile,
			TrustedCAFile: o.Recommended.Etcd.StorageConfig.Transport.TrustedCAFile,
		},
		Server:   server,
		TearDown: tearDown,
	}, nil
}

func waitReady(cfg *restclient.Config, stopped <-chan error) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var lastErr error
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-stopped:
			return false, fmt.Errorf("server stopped before it was ready: %w", err)
		default:
		}
		result := client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx)
		var status int
		result.StatusCode(&status)
		lastErr = result.Error()
		return status == 200, nil
	})
	if err != nil && lastErr != nil {
		return errors.Join(err, lastErr)
	}
	return err
}

// EtcdClientConfig is a client configuration for the embedded etcd, with
// the API server's client certificate.
func (ts *TestServer) EtcdClientConfig() (clientv3.Config, error) {
	tlsConfig, err := ts.EtcdTLS.ClientConfig()
	if err != nil {
		return clientv3.Config{}, err
	}
	return clientv3.Config{Endpoints: ts.EtcdEndpoints, TLS: tlsConfig, DialTimeout: 10 * time.Second, Logger: zap.NewNop()}, nil
}

// EtcdFlags are the flags that point another API server at the embedded etcd.
func (ts *TestServer) EtcdFlags() []string {
	return []string{
		"--etcd-servers=" + strings.Join(ts.EtcdEndpoints, ","),
		"--etcd-cafile=" + ts.EtcdTLS.TrustedCAFile,
		"--etcd-certfile=" + ts.EtcdTLS.CertFile,
		"--etcd-keyfile=" + ts.EtcdTLS.KeyFile,
	}
}
