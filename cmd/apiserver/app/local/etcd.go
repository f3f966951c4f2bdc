package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	etcdMemberName = "capstan-local"
	// etcdLockFile guards the data directory. etcd's own bbolt lock makes
	// a second instance block forever inside embed.StartEtcd, so we take a
	// non-blocking lock first to fail fast with a useful message.
	etcdLockFile = "capstan-etcd.lock"
	// etcdPortAttempts bounds retries when another process grabs a port
	// between us finding it free and etcd binding it.
	etcdPortAttempts = 5
	// etcdServeFailedMsg is what embed logs, at error level and with a
	// stack trace, for every listener when it is closed, including during
	// a normal shutdown.
	etcdServeFailedMsg = "setting up serving from embedded etcd failed."
)

// etcdReadyTimeout is a variable so tests can exercise the timeout path
// without waiting a minute.
var etcdReadyTimeout = 60 * time.Second

// freeLoopbackPort finds a port that is currently unused on 127.0.0.1. It is
// a variable so tests can simulate losing the race for the port.
var freeLoopbackPort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// EtcdOptions configures StartEtcd. The zero value of every field except
// DataDir is a safe default.
type EtcdOptions struct {
	// DataDir holds the etcd data and survives restarts; it is created with
	// mode 0700 if missing.
	DataDir string
	// UnsafeNoFsync trades durability for speed, which is only acceptable
	// for throw-away data such as in tests.
	UnsafeNoFsync bool
	// QuotaBackendBytes caps the database size; 0 keeps etcd's default.
	QuotaBackendBytes int64
	// PKIDir holds etcd's own CA and certificates (EnsureEtcdPKI); required.
	PKIDir string
}

// Etcd is a single-member etcd embedded in the local-mode server, so that
// running Capstan locally does not require installing or managing a
// separate etcd.
type Etcd struct {
	server    *embed.Etcd
	lock      *fileutil.LockedFile
	pki       *EtcdPKI
	endpoints []string
	closing   *atomic.Bool
	closeOnce sync.Once
}

// StartEtcd starts etcd on loopback-only client and peer URLs with
// OS-chosen free ports, and returns once it serves requests. Both speak TLS
// and require a client certificate from etcd's own CA (EnsureEtcdPKI in
// opts.PKIDir), as kubeadm's etcd does on loopback: other users of the host
// must not read or rewrite objects behind the API server's authorizer.
//
// ctx bounds only the start-up; use Close to stop the server. Start-up fails
// after 60 seconds, or immediately if another Etcd, in this process or
// another, already uses opts.DataDir.
//
// Ports are chosen before etcd starts, rather than letting etcd bind port 0,
// because etcd publishes its configured URLs in the cluster membership and
// would otherwise advertise the unusable address 127.0.0.1:0.
func StartEtcd(ctx context.Context, opts EtcdOptions) (*Etcd, error) {
	if opts.DataDir == "" {
		return nil, errors.New("etcd data directory must not be empty")
	}
	if opts.PKIDir == "" {
		return nil, errors.New("etcd PKI directory must not be empty")
	}
	if opts.QuotaBackendBytes < 0 {
		return nil, fmt.Errorf("etcd backend quota must not be negative, got %d", opts.QuotaBackendBytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating etcd data directory: %w", err)
	}
	lockPath := filepath.Join(opts.DataDir, etcdLockFile)
	lock, err := fileutil.TryLockFile(lockPath, os.O_WRONLY|os.O_CREATE, 0o600)
	if errors.Is(err, fileutil.ErrLocked) {
		return nil, fmt.Errorf("etcd data directory %s is in use by another etcd (lock %s is held)", opts.DataDir, lockPath)
	}
	if err != nil {
		return nil, fmt.Errorf("locking etcd data directory: %w", err)
	}

	pki, err := EnsureEtcdPKI(opts.PKIDir)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	closing := new(atomic.Bool)
	logger, err := etcdLogger(closing)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	server, err := startEmbedded(opts, pki, logger)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	if err := waitReady(ctx, server, opts.DataDir); err != nil {
		closing.Store(true)
		server.Close()
		_ = lock.Close()
		return nil, err
	}

	endpoints := make([]string, 0, len(server.Clients))
	for _, l := range server.Clients {
		endpoints = append(endpoints, (&url.URL{Scheme: "https", Host: l.Addr().String()}).String())
	}
	return &Etcd{server: server, lock: lock, pki: pki, endpoints: endpoints, closing: closing}, nil
}

func startEmbedded(opts EtcdOptions, pki *EtcdPKI, logger *zap.Logger) (*embed.Etcd, error) {
	for attempt := 1; ; attempt++ {
		cfg, err := etcdConfig(opts, pki, logger)
		if err != nil {
			return nil, err
		}
		server, err := embed.StartEtcd(cfg)
		if err == nil {
			return server, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == etcdPortAttempts {
			return nil, fmt.Errorf("starting etcd in %s: %w", opts.DataDir, err)
		}
	}
}

// The embedded etcd's snapshot settings; see etcdConfig.
const (
	embeddedSnapshotCount          = 10
	embeddedSnapshotCatchUpEntries = 5
)

func etcdConfig(opts EtcdOptions, pki *EtcdPKI, logger *zap.Logger) (*embed.Config, error) {
	clientPort, err := freeLoopbackPort()
	if err != nil {
		return nil, fmt.Errorf("finding a free port for etcd clients: %w", err)
	}
	peerPort, err := freeLoopbackPort()
	if err != nil {
		return nil, fmt.Errorf("finding a free port for etcd peers: %w", err)
	}
	clientURL := url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

	cfg := embed.NewConfig()
	cfg.Name = etcdMemberName
	cfg.Dir = opts.DataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	// Only used when the data directory is new; on restart etcd reads the
	// membership from its WAL, so a different peer port is harmless.
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.InitialClusterToken = etcdMemberName
	tlsInfo := transport.TLSInfo{
		CertFile:       pki.ServerCertFile,
		KeyFile:        pki.ServerKeyFile,
		TrustedCAFile:  pki.CACertFile,
		ClientCertAuth: true,
	}
	cfg.ClientTLSInfo = tlsInfo
	cfg.PeerTLSInfo = tlsInfo
	// The API server speaks gRPC; the JSON gateway would only widen the
	// surface reachable on loopback.
	cfg.EnableGRPCGateway = false
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	cfg.UnsafeNoFsync = opts.UnsafeNoFsync
	cfg.QuotaBackendBytes = opts.QuotaBackendBytes
	// etcd keeps its raft log in memory until a snapshot compacts it: by
	// default up to 10,000 entries, then 5,000 kept for followers to catch
	// up. Embedded, that memory is the server's heap, and each entry can hold
	// a ConfigSet and its revision near the 1.5 MiB limit, so one tenant
	// patching a large ConfigSet grew it by hundreds of MB. A single member
	// has no follower to catch up, and its snapshot holds the membership only
	// (the data is in the backend), so snapshotting every 10 entries and
	// keeping 5 bounds the log to 15 entries (at most ~45 MiB) for about 9%
	// fewer creates per second (740 → 675/s at concurrency 16 on 2 cores).
	cfg.SnapshotCount = embeddedSnapshotCount
	cfg.SnapshotCatchUpEntries = embeddedSnapshotCatchUpEntries
	return cfg, nil
}

// etcdLogger returns etcd's default logger limited to errors, which keeps
// the server's output readable, minus the listener errors embed reports
// once closing is set, which would otherwise make every clean shutdown look
// like a failure.
func etcdLogger(closing *atomic.Bool) (*zap.Logger, error) {
	lg, err := logutil.CreateDefaultZapLogger(zapcore.ErrorLevel)
	if err != nil {
		return nil, fmt.Errorf("creating etcd logger: %w", err)
	}
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return shutdownNoiseFilter{Core: c, closing: closing}
	})), nil
}

type shutdownNoiseFilter struct {
	zapcore.Core
	closing *atomic.Bool
}

func (f shutdownNoiseFilter) With(fields []zapcore.Field) zapcore.Core {
	return shutdownNoiseFilter{Core: f.Core.With(fields), closing: f.closing}
}

func (f shutdownNoiseFilter) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if ent.Message == etcdServeFailedMsg && f.closing.Load() {
		return ce
	}
	return f.Core.Check(ent, ce)
}

func waitReady(ctx context.Context, server *embed.Etcd, dataDir string) error {
	timer := time.NewTimer(etcdReadyTimeout)
	defer timer.Stop()
	select {
	case <-server.Server.ReadyNotify():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for etcd to become ready: %w", ctx.Err())
	case <-timer.C:
		return fmt.Errorf("etcd in %s did not become ready within %s", dataDir, etcdReadyTimeout)
	case <-server.Server.StopNotify():
		return fmt.Errorf("etcd in %s stopped during start-up", dataDir)
	case err := <-server.Err():
		return fmt.Errorf("etcd in %s failed during start-up: %w", dataDir, err)
	}
}

// Endpoints returns the client URLs to configure the API server's storage
// with; the ports differ on every start.
func (e *Etcd) Endpoints() []string {
	return append([]string(nil), e.endpoints...)
}

// PKI returns etcd's CA and the client certificate the API server connects with.
func (e *Etcd) PKI() *EtcdPKI {
	return e.pki
}

// Err reports errors from etcd's client and peer listeners after start-up,
// so the server can shut down instead of running without storage. The
// channel is closed by Close.
func (e *Etcd) Err() <-chan error {
	return e.server.Err()
}

// Close stops etcd, waits until it has released the data directory, and
// may be called more than once.
func (e *Etcd) Close() {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.server.Close()
		<-e.server.Server.StopNotify()
		_ = e.lock.Close()
	})
}
