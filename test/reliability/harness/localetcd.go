package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The embedded etcd's client certificate and CA, as local mode writes them
// below --data-dir (cmd/apiserver/app/local.EnsureEtcdPKI).
const (
	embeddedEtcdPKIDir      = "pki/etcd"
	embeddedEtcdCA          = "ca.crt"
	embeddedEtcdClientCert  = "apiserver-etcd-client.crt"
	embeddedEtcdClientKey   = "apiserver-etcd-client.key"
	embeddedEtcdDialTimeout = 2 * time.Second
)

// EmbeddedEtcdConfig is a client configuration for the embedded etcd of a
// local-mode Capstan started without EtcdServers: the client certificate local
// mode issued for itself in DataDir/pki/etcd, and the client URL. etcd's ports
// change on every start and are not printed, so the URL is found as an
// operator finds it with `ss -ltnp`: among the loopback ports the process
// listens on besides its own, the one that answers etcd's Status call.
func (c *Capstan) EmbeddedEtcdConfig(ctx context.Context) (clientv3.Config, error) {
	dir := filepath.Join(c.opts.DataDir, embeddedEtcdPKIDir)
	tlsConfig, err := transport.TLSInfo{
		CertFile:      filepath.Join(dir, embeddedEtcdClientCert),
		KeyFile:       filepath.Join(dir, embeddedEtcdClientKey),
		TrustedCAFile: filepath.Join(dir, embeddedEtcdCA),
	}.ClientConfig()
	if err != nil {
		return clientv3.Config{}, fmt.Errorf("embedded etcd client certificate: %w", err)
	}
	pid := c.PID()
	if pid == 0 {
		return clientv3.Config{}, errors.New("capstan is not running")
	}
	ports, err := listeningPorts(pid)
	if err != nil {
		return clientv3.Config{}, err
	}
	var tried []string
	for _, port := range ports {
		if port == c.port {
			continue
		}
		cfg := clientv3.Config{
			Endpoints:   []string{"https://127.0.0.1:" + strconv.Itoa(port)},
			TLS:         tlsConfig,
			DialTimeout: embeddedEtcdDialTimeout,
			Logger:      zap.NewNop(),
		}
		err := func() error {
			client, err := clientv3.New(cfg)
			if err != nil {
				return err
			}
			defer client.Close()
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err = client.Status(ctx, cfg.Endpoints[0])
			return err
		}()
		if err == nil {
			return cfg, nil
		}
		tried = append(tried, fmt.Sprintf("%d: %v", port, err))
	}
	return clientv3.Config{}, fmt.Errorf("no loopback port of capstan (pid %d, ports %v) answers as its embedded etcd: %v", pid, ports, tried)
}

// listeningPorts returns the TCP ports on 127.0.0.1 that process pid listens
// on: the sockets among its file descriptors that /proc/PID/net/tcp lists in
// state LISTEN (0A).
func listeningPorts(pid int) ([]int, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	sockets := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			sockets[strings.TrimSuffix(inode, "]")] = true
		}
	}
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return nil, err
	}
	var ports []int
	for _, line := range strings.Split(string(table), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" || !sockets[f[9]] {
			continue
		}
		host, port, ok := strings.Cut(f[1], ":")
		if !ok || host != "0100007F" { // 127.0.0.1, little-endian hex
			continue
		}
		n, err := strconv.ParseUint(port, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", f[1], err)
		}
		ports = append(ports, int(n))
	}
	return ports, nil
}
