// Package integration runs Capstan in-process, in local mode with its own
// embedded etcd, and exercises it the way users and tools do: raw HTTP, the
// generated clientset, and kubectl.
//
// The package shares one server between its tests, because a server takes
// seconds to start: the first test that asks for it (sharedServer, sharedEnv)
// starts it, and TestMain stops it when every test has run. Each test that
// uses it works in namespaces of its own and leaves nothing cluster-wide that
// could reach another test's objects, so the order of the tests does not
// matter. A test that needs other server flags, a process-wide feature gate or
// a cluster-wide policy selecting every ConfigSet starts a server of its own
// and says why where it does.
package integration

import (
	"fmt"
	"os"
	"sync"
	"testing"

	capstantesting "capstan.dev/capstan/cmd/apiserver/app/testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	shared.stop()
	for _, f := range packageCleanups {
		f()
	}
	os.Exit(code)
}

// packageCleanups run after every test, for what tests share beyond the
// server (the plugin binary).
var packageCleanups []func()

// shared is the package's server, started at first use.
var shared sharedServerState

type sharedServerState struct {
	once sync.Once
	ts   *capstantesting.TestServer
	err  error
	tb   *packageTB
}

// sharedServer returns the package's server, starting it on first use.
func sharedServer(t testing.TB) *capstantesting.TestServer {
	t.Helper()
	shared.once.Do(func() {
		shared.tb = &packageTB{}
		shared.ts, shared.err = shared.tb.start()
	})
	if shared.err != nil {
		t.Fatalf("starting the package's shared server: %v", shared.err)
	}
	return shared.ts
}

// stop tears the shared server down, if a test started it.
func (s *sharedServerState) stop() {
	if s.tb != nil {
		s.tb.cleanUp()
	}
}

// packageTB is the testing.TB that StartTestServer gets for the shared
// server: it lives as long as the package's tests, not one test, so its
// temporary folder and cleanups are the package's. Only the methods
// StartTestServer calls are implemented; the embedded nil TB makes it a
// testing.TB.
type packageTB struct {
	testing.TB
	dirs     []string
	cleanups []func()
}

// packageTBFailure carries a Fatalf out of StartTestServer.
type packageTBFailure struct{ msg string }

func (tb *packageTB) start() (ts *capstantesting.TestServer, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(packageTBFailure)
			if !ok {
				panic(r)
			}
			tb.cleanUp()
			ts, err = nil, fmt.Errorf("%s", f.msg)
		}
	}()
	return capstantesting.StartTestServer(tb), nil
}

func (tb *packageTB) Helper() {}

func (tb *packageTB) TempDir() string {
	dir, err := os.MkdirTemp("", "capstan-integration-")
	if err != nil {
		panic(packageTBFailure{msg: fmt.Sprintf("creating a temporary folder: %v", err)})
	}
	tb.dirs = append(tb.dirs, dir)
	return dir
}

func (tb *packageTB) Cleanup(f func()) { tb.cleanups = append(tb.cleanups, f) }

func (tb *packageTB) Fatalf(format string, args ...any) {
	panic(packageTBFailure{msg: fmt.Sprintf(format, args...)})
}

func (tb *packageTB) Fatal(args ...any) { panic(packageTBFailure{msg: fmt.Sprint(args...)}) }

// cleanUp runs the cleanups, last registered first, and removes the folders.
func (tb *packageTB) cleanUp() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	tb.cleanups = nil
	for _, dir := range tb.dirs {
		_ = os.RemoveAll(dir)
	}
	tb.dirs = nil
}
