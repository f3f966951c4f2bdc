package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/test/utils/controlplane"
)

// secretboxPrefix starts every value the encryption configuration's
// secretbox provider (key "key1") wrote.
const secretboxPrefix = "k8s:enc:secretbox:v1:key1:"

// TestStorageInCapstanEtcd reads Capstan's etcd (TLS, client certificates)
// directly: ConfigSets and ConfigRevisions under
// /registry/config.capstan.dev/ are encrypted at rest, ConfigPolicies are
// v1beta1 JSON, and etcd refuses a client without a certificate.
func TestStorageInCapstanEtcd(t *testing.T) {
	const ns = "e2e-storage"
	createNamespace(t, ns, nil)
	client, _ := adminClients(t)
	ctx := t.Context()
	const secretValue, plainValue = "hunter2-very-secret", "plain-value-visible"
	if _, err := client.ConfigV1beta1().ConfigSets(ns).Create(ctx, &configv1beta1.ConfigSet{
		ObjectMeta: metav1.ObjectMeta{Name: "vault"},
		Spec: configv1beta1.ConfigSetSpec{
			Data:       map[string]string{"PLAIN": plainValue},
			SecretData: map[string][]byte{"PASSWORD": []byte(secretValue)},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ConfigV1beta1().ConfigPolicies().Create(ctx, &configv1beta1.ConfigPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-storage-policy"},
		Spec:       configv1beta1.ConfigPolicySpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"e2e": "never"}}, MaxKeys: ptr.To[int32](5)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	etcd := etcdClient(t, testCluster.CapstanEtcdClientCert, testCluster.CapstanEtcdClientKey)
	read := func(key string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := etcd.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("etcd has %d values at %s", len(resp.Kvs), key)
		}
		return resp.Kvs[0].Value
	}

	for _, key := range []string{
		"/registry/config.capstan.dev/configsets/" + ns + "/vault",
		"/registry/config.capstan.dev/configrevisions/" + ns + "/vault-1",
	} {
		t.Run("encrypted "+key, func(t *testing.T) {
			value := read(key)
			if !bytes.HasPrefix(value, []byte(secretboxPrefix)) {
				t.Fatalf("value at %s starts %q, want %q", key, value[:min(len(value), 40)], secretboxPrefix)
			}
			for _, clear := range []string{secretValue, plainValue, "PASSWORD", "config.capstan.dev"} {
				if bytes.Contains(value, []byte(clear)) {
					t.Errorf("value at %s contains %q in the clear", key, clear)
				}
			}
		})
	}

	t.Run("ConfigPolicies are v1beta1 JSON", func(t *testing.T) {
		value := string(read("/registry/config.capstan.dev/configpolicies/e2e-storage-policy"))
		if !strings.HasPrefix(value, "{") || !strings.Contains(value, `"apiVersion":"config.capstan.dev/v1beta1"`) || !strings.Contains(value, `"kind":"ConfigPolicy"`) {
			t.Fatalf("stored ConfigPolicy: %.200s", value)
		}
	})

	t.Run("etcd refuses a client without a certificate", func(t *testing.T) {
		anonymous := etcdClient(t, "", "")
		// The client retries the handshake until the deadline.
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := anonymous.Get(ctx, "/registry/config.capstan.dev/configsets/"+ns+"/vault"); err == nil {
			t.Fatal("a client without a certificate read from Capstan's etcd")
		}
	})
}

// etcdClient connects to Capstan's etcd trusting its CA, with a client
// certificate when certFile is set.
func etcdClient(t *testing.T, certFile, keyFile string) *clientv3.Client {
	t.Helper()
	tlsCfg, err := transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: testCluster.EtcdCAFile}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	// The client logs each failed handshake retry, which one subtest expects.
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{testCluster.CapstanEtcdURL}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServingCertReload replaces Capstan's serving certificate on disk and
// expects Capstan to serve the new one without a restart, and the aggregator
// to keep reaching it (same CA, same caBundle).
func TestServingCertReload(t *testing.T) {
	caPEM, err := os.ReadFile(testCluster.CapstanCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	u, err := url.Parse(testCluster.CapstanURL)
	if err != nil {
		t.Fatal(err)
	}
	// The aggregator verifies this name, whatever address it dials.
	serverName := controlplane.CapstanService + "." + controlplane.CapstanNamespace + ".svc"
	served := func() (*x509.Certificate, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", u.Host, &tls.Config{RootCAs: roots, ServerName: serverName})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	before, err := served()
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := testCluster.RotateCapstanServingCert()
	if err != nil {
		t.Fatal(err)
	}
	if rotated.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("the rotated certificate has the old serial number")
	}
	// The file watch usually reacts at once; the periodic check within a minute.
	eventually(t, 90*time.Second, "Capstan serves the rotated certificate", func() error {
		now, err := served()
		if err != nil {
			return err
		}
		if now.SerialNumber.Cmp(rotated.SerialNumber) != 0 {
			return fmt.Errorf("serial %s, want %s", now.SerialNumber, rotated.SerialNumber)
		}
		return nil
	})
	client, _ := adminClients(t)
	if _, err := client.ConfigV1beta1().ConfigPolicies().List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Fatalf("through kube-apiserver after the rotation: %v", err)
	}
}
