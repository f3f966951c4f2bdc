package local

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func startTestEtcd(t *testing.T, opts EtcdOptions) *Etcd {
	t.Helper()
	e, err := StartEtcd(t.Context(), opts)
	if err != nil {
		t.Fatalf("StartEtcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

func etcdClient(t *testing.T, e *Etcd) *clientv3.Client {
	t.Helper()
	tlsConfig, err := transport.TLSInfo{
		CertFile:      e.PKI().ClientCertFile,
		KeyFile:       e.PKI().ClientKeyFile,
		TrustedCAFile: e.PKI().CACertFile,
	}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		TLS:         tlsConfig,
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func checkLoopbackEndpoints(t *testing.T, e *Etcd) {
	t.Helper()
	eps := e.Endpoints()
	if len(eps) != 1 {
		t.Fatalf("endpoints = %v, want one", eps)
	}
	u, err := url.Parse(eps[0])
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	if u.Scheme != "https" || u.Hostname() != "127.0.0.1" || port == 0 {
		t.Errorf("endpoint %q, want https://127.0.0.1:<port>", eps[0])
	}
}

func TestEtcdPersistsAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	opts := EtcdOptions{DataDir: dir, PKIDir: filepath.Join(filepath.Dir(dir), "pki")}

	e := startTestEtcd(t, opts)
	checkLoopbackEndpoints(t, e)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode = %v, want 0700", st.Mode().Perm())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := etcdClient(t, e)
	if _, err := c.Put(ctx, "/capstan/test", "persisted"); err != nil {
		t.Fatalf("put: %v", err)
	}
	_ = c.Close()
	firstEndpoints := e.Endpoints()
	e.Close()
	e.Close() // must be safe to call twice

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(firstEndpoints[0], "http://"), time.Second)
	if err == nil {
		_ = conn.Close()
		t.Error("etcd still accepts connections after Close")
	}

	e = startTestEtcd(t, opts)
	checkLoopbackEndpoints(t, e)
	c = etcdClient(t, e)
	resp, err := c.Get(ctx, "/capstan/test")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "persisted" {
		t.Fatalf("after restart got %v, want value %q", resp.Kvs, "persisted")
	}
}

func TestEtcdRejectsDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	startTestEtcd(t, EtcdOptions{DataDir: dir, UnsafeNoFsync: true, PKIDir: t.TempDir()})

	start := time.Now()
	second, err := StartEtcd(t.Context(), EtcdOptions{DataDir: dir, UnsafeNoFsync: true, PKIDir: t.TempDir()})
	if err == nil {
		second.Close()
		t.Fatal("second etcd on the same data dir started")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q does not say the data dir is in use", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v; it should not wait for etcd's own lock", d)
	}
}

// TestEtcdRetriesWhenPortIsTaken simulates another process binding the port
// we picked before etcd could.
func TestEtcdRetriesWhenPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	takenPort := taken.Addr().(*net.TCPAddr).Port

	orig := freeLoopbackPort
	t.Cleanup(func() { freeLoopbackPort = orig })
	calls := 0
	freeLoopbackPort = func() (int, error) {
		calls++
		if calls == 1 {
			return takenPort, nil
		}
		return orig()
	}

	e := startTestEtcd(t, EtcdOptions{DataDir: t.TempDir(), UnsafeNoFsync: true, PKIDir: t.TempDir()})
	if calls < 4 {
		t.Errorf("port picker called %d times, want a retry after the bind failure", calls)
	}
	checkLoopbackEndpoints(t, e)
	if strings.HasSuffix(e.Endpoints()[0], ":"+strconv.Itoa(takenPort)) {
		t.Errorf("endpoint %s uses the port that was taken", e.Endpoints()[0])
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := etcdClient(t, e).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
}

func TestStartEtcdRejectsBadInput(t *testing.T) {
	if _, err := StartEtcd(t.Context(), EtcdOptions{}); err == nil {
		t.Error("StartEtcd accepted an empty data dir")
	}
	if _, err := StartEtcd(t.Context(), EtcdOptions{DataDir: t.TempDir(), PKIDir: t.TempDir(), QuotaBackendBytes: -1}); err == nil {
		t.Error("StartEtcd accepted a negative quota")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := StartEtcd(ctx, EtcdOptions{DataDir: t.TempDir(), PKIDir: t.TempDir()}); err == nil {
		t.Error("StartEtcd ignored a cancelled context")
	}
}

// TestEtcdRequiresAClientCertificate: the embedded etcd answers only clients
// with a certificate from its own CA; a plain connection, TLS without a
// certificate and a certificate from another CA (the API server's, whose
// admin certificate a local user holds) are all refused.
func TestEtcdRequiresAClientCertificate(t *testing.T) {
	e := startTestEtcd(t, EtcdOptions{DataDir: t.TempDir(), UnsafeNoFsync: true, PKIDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := etcdClient(t, e).Put(ctx, "/capstan/probe", "v"); err != nil {
		t.Fatalf("the API server's client certificate was refused: %v", err)
	}

	otherPKI, err := EnsurePKI(t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := strings.Replace(e.Endpoints()[0], "https://", "http://", 1)
	for _, tc := range []struct {
		name     string
		endpoint string
		tls      *transport.TLSInfo
	}{
		{"plain HTTP", plain, nil},
		{"TLS without a client certificate", e.Endpoints()[0], &transport.TLSInfo{TrustedCAFile: e.PKI().CACertFile}},
		{"the admin certificate of the API server's CA", e.Endpoints()[0], &transport.TLSInfo{
			CertFile: otherPKI.AdminCertFile, KeyFile: otherPKI.AdminKeyFile, TrustedCAFile: e.PKI().CACertFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientv3.Config{Endpoints: []string{tc.endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
			if tc.tls != nil {
				tlsConfig, err := tc.tls.ClientConfig()
				if err != nil {
					t.Fatal(err)
				}
				cfg.TLS = tlsConfig
			}
			c, err := clientv3.New(cfg)
			if err != nil {
				return // refused while connecting
			}
			defer c.Close()
			rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
			defer rcancel()
			if _, err := c.Get(rctx, "/capstan/probe"); err == nil {
				t.Errorf("etcd answered a read over %s", tc.name)
			}
		})
	}
}
