package reliability

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	restclient "k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	configv1beta1client "capstan.dev/capstan/pkg/generated/clientset/versioned/typed/config/v1beta1"
	"capstan.dev/capstan/pkg/registry/config/configrevision/history"
	"capstan.dev/capstan/test/reliability/harness"
)

// The steady mixed load the fault tests run: 8 clients reading, patching
// (entries and secret entries), rolling back, listing, creating, deleting and
// re-creating ConfigSets, and watchers following them. Every call and return
// on the registers goes into a history that porcupine checks for
// linearizability.
const (
	loadClients  = 8
	loadKeys     = 32
	loadWatchers = 2
	loadValueKey = "v"
	// loadSecretKey is a secret entry every patch writes with the same value
	// as loadValueKey: present and equal to it in every state but "init".
	loadSecretKey = "s"
	// loadHistoryLimit keeps every revision a run makes, so that each
	// acknowledged write's revision can be checked.
	loadHistoryLimit = 1000
	// loadPruneKeys keys have a history limit of loadPruneLimit, so that
	// most of their writes prune.
	loadPruneKeys  = 4
	loadPruneLimit = 3
	// loadRecreateKeys keys are deleted and created again, outside the
	// linearizability check (a register has no absent state).
	loadRecreateKeys = 2
	// loadUser is who the harness's kubeconfig authenticates as: the author
	// of every revision a request wrote.
	loadUser = "capstan-admin"
	// notWrittenWarning is in the warning of a change whose revision its
	// request could not write, which the reconciler then restores.
	notWrittenWarning = "its history was not written"
	// answerGrace is how long past the server's request timeout a request
	// may take before it counts as hanging.
	answerGrace = 5 * time.Second
)

type ackedWrite struct {
	key      string
	value    string
	revision int64
	// rollbackOf is the revision a rollback restored, 0 for a patch.
	rollbackOf int64
	// warned: the answer said its revision was not written; the reconciler
	// restores it, as its author.
	warned bool
}

type loadOptions struct {
	namespace string
	// requestTimeout is the server's --request-timeout.
	requestTimeout time.Duration
	// configs are the servers to spread clients over (replicas).
	configs []*restclient.Config
	// refusedExpected: the server goes away (SIGKILL, SIGTERM), so refused
	// connections are unknown outcomes, not violations.
	refusedExpected bool
	// brokenExpected: the server dies mid-request (SIGKILL), so connections
	// that break after the request was sent are unknown outcomes too.
	brokenExpected bool
}

// load runs the clients and watchers and keeps what they saw.
type load struct {
	t       *testing.T
	opts    loadOptions
	hist    *harness.History
	clients []versioned.Interface
	watch   []versioned.Interface
	// workers are the clients' own clientsets, each with its own warnings.
	workers  []versioned.Interface
	warnings []*warningRecorder
	keys     []string
	limits   map[string]int64
	recreate []string

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	watchWG  sync.WaitGroup
	watchCtx context.Context
	cancel   context.CancelFunc

	mu             sync.Mutex
	counts         map[string]int
	samples        map[string]string
	acked          []ackedWrite
	ackedCreates   []string
	unknownCreates []string
	violations     []string
	slowest        time.Duration
	watchers       []*watcher
}

func newLoad(t *testing.T, opts loadOptions) *load {
	t.Helper()
	l := &load{t: t, opts: opts, hist: harness.NewHistory(), counts: map[string]int{}, samples: map[string]string{}, stop: make(chan struct{}),
		limits: map[string]int64{}}
	for id := range loadClients {
		c := *opts.configs[id%len(opts.configs)]
		c.QPS = -1
		c.Timeout = opts.requestTimeout + 4*answerGrace
		rec := &warningRecorder{}
		c.WarningHandler = rec
		l.workers = append(l.workers, versioned.NewForConfigOrDie(&c))
		l.warnings = append(l.warnings, rec)
	}
	for _, cfg := range opts.configs {
		c := *cfg
		c.QPS = -1
		// The client gives up well after the server should have answered, so
		// that a hang is seen as one instead of being cut short.
		c.Timeout = opts.requestTimeout + 4*answerGrace
		l.clients = append(l.clients, versioned.NewForConfigOrDie(&c))
		w := *cfg
		w.QPS = -1
		l.watch = append(l.watch, versioned.NewForConfigOrDie(&w))
	}
	for i := range loadKeys {
		l.keys = append(l.keys, fmt.Sprintf("key-%02d", i))
		l.limits[l.keys[i]] = loadHistoryLimit
	}
	for i := range loadPruneKeys {
		k := fmt.Sprintf("prune-%02d", i)
		l.keys = append(l.keys, k)
		l.limits[k] = loadPruneLimit
	}
	for i := range loadRecreateKeys {
		l.recreate = append(l.recreate, fmt.Sprintf("recreate-%02d", i))
	}
	l.watchCtx, l.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() { l.Stop(); l.StopWatchers() })
	return l
}

// Start creates the keys (recorded as the first write of each) and starts
// the clients and watchers.
func (l *load) Start() {
	l.t.Helper()
	ctx := context.Background()
	cs := l.clients[0].ConfigV1beta1().ConfigSets(l.opts.namespace)
	for _, k := range l.keys {
		obj := configSet(k, map[string]string{loadValueKey: "init"})
		obj.Spec.RevisionHistoryLimit = ptr.To(int32(l.limits[k]))
		call := l.hist.Now()
		out, err := cs.Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			l.t.Fatalf("creating %s: %v", k, err)
		}
		l.hist.Done(0, harness.RegisterOp{Key: k, Write: true, Value: "init"}, call, register(out))
		l.addAcked(ackedWrite{key: k, value: "init", revision: out.Status.CurrentRevision})
	}
	for _, k := range l.recreate {
		obj := configSet(k, map[string]string{loadValueKey: "init"})
		if _, err := cs.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			l.t.Fatalf("creating %s: %v", k, err)
		}
	}
	for i := range loadWatchers {
		w := &watcher{l: l, id: i, client: l.watch[i%len(l.watch)], state: map[string]harness.Register{}}
		l.watchers = append(l.watchers, w)
		l.watchWG.Add(1)
		go w.run(l.watchCtx)
	}
	for i := range loadClients {
		l.wg.Add(1)
		go l.client(i)
	}
}

// Stop stops the clients and waits for their last requests.
func (l *load) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// StopWatchers stops the watchers.
func (l *load) StopWatchers() {
	l.cancel()
	l.watchWG.Wait()
}

func register(cs *v1beta1.ConfigSet) harness.Register {
	return harness.Register{Value: cs.Spec.Data[loadValueKey], Revision: cs.Status.CurrentRevision}
}

func (l *load) client(id int) {
	defer l.wg.Done()
	rng := rand.New(rand.NewSource(int64(id) + time.Now().UnixNano()))
	cs := l.workers[id].ConfigV1beta1().ConfigSets(l.opts.namespace)
	warned := l.warnings[id]
	ctx := context.Background()
	for seq := 0; ; seq++ {
		select {
		case <-l.stop:
			return
		default:
		}
		key := l.keys[rng.Intn(len(l.keys))]
		warned.take()
		switch p := rng.Intn(100); {
		case p < 40:
			value := fmt.Sprintf("c%d-%d", id, seq)
			op := harness.RegisterOp{Key: key, Write: true, Value: value}
			patch := []byte(fmt.Sprintf(`{"spec":{"data":{%q:%q},"secretData":{%q:%q}}}`,
				loadValueKey, value, loadSecretKey, base64.StdEncoding.EncodeToString([]byte(value))))
			call, start := l.hist.Now(), time.Now()
			out, err := cs.Patch(ctx, key, types.MergePatchType, patch, metav1.PatchOptions{})
			switch l.outcome("patch", start, err) {
			case succeeded:
				l.hist.Done(id, op, call, register(out))
				l.addAcked(ackedWrite{key: key, value: value, revision: out.Status.CurrentRevision, warned: warned.take()})
			case unknown:
				l.hist.Unknown(id, op, call)
			}
		case p < 45:
			target, ok := l.rollbackTarget(rng, key)
			if !ok {
				continue
			}
			op := harness.RegisterOp{Key: key, Write: true, Value: target.value}
			call, start := l.hist.Now(), time.Now()
			out, err := cs.Rollback(ctx, key, &v1beta1.ConfigSetRollback{Revision: target.revision}, metav1.CreateOptions{})
			switch l.outcome("rollback", start, err) {
			case succeeded:
				l.hist.Done(id, op, call, register(out))
				l.addAcked(ackedWrite{key: key, value: target.value, revision: out.Status.CurrentRevision, rollbackOf: target.revision, warned: warned.take()})
			case unknown:
				l.hist.Unknown(id, op, call)
			}
		case p < 78:
			call, start := l.hist.Now(), time.Now()
			out, err := cs.Get(ctx, key, metav1.GetOptions{})
			if l.outcome("get", start, err) == succeeded {
				l.hist.Done(id, harness.RegisterOp{Key: key}, call, register(out))
			}
		case p < 88:
			start := time.Now()
			list, err := cs.List(ctx, metav1.ListOptions{})
			if l.outcome("list", start, err) == succeeded {
				l.checkList(list)
			}
		case p < 92:
			l.recreateOne(ctx, cs, l.recreate[rng.Intn(len(l.recreate))], fmt.Sprintf("r%d-%d", id, seq))
		default:
			name := fmt.Sprintf("u-%d-%d", id, seq)
			start := time.Now()
			_, err := cs.Create(ctx, configSet(name, map[string]string{"client": strconv.Itoa(id)}), metav1.CreateOptions{})
			result := l.outcome("create", start, err)
			l.mu.Lock()
			switch result {
			case succeeded:
				l.ackedCreates = append(l.ackedCreates, name)
			case unknown:
				l.unknownCreates = append(l.unknownCreates, name)
			}
			l.mu.Unlock()
		}
		time.Sleep(time.Duration(10+rng.Intn(20)) * time.Millisecond)
	}
}

// keptKeys are the registers whose history keeps every revision a run
// makes: a revision of theirs is never pruned, so it can be looked for later.
func (l *load) keptKeys() []string {
	var out []string
	for _, k := range l.keys {
		if l.limits[k] >= loadHistoryLimit {
			out = append(out, k)
		}
	}
	return out
}

// rollbackTarget picks an earlier acknowledged write of key whose revision
// its own request wrote, so that the revision is there to roll back to. Keys
// that prune have none: their targets may be gone, a 404 by design.
func (l *load) rollbackTarget(rng *rand.Rand, key string) (ackedWrite, bool) {
	if l.limits[key] < loadHistoryLimit {
		return ackedWrite{}, false // its targets may be pruned: a 404 by design
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var candidates []ackedWrite
	for _, w := range l.acked {
		if w.key == key && !w.warned {
			candidates = append(candidates, w)
		}
	}
	if len(candidates) == 0 {
		return ackedWrite{}, false
	}
	return candidates[rng.Intn(len(candidates))], true
}

// recreateOne deletes name and creates it again with a new value. Clients
// race on these keys, so a delete may find nothing (404) and a create may
// find the name taken (409); the end state is checked in Verify.
func (l *load) recreateOne(ctx context.Context, cs configsetsClient, name, value string) {
	start := time.Now()
	err := cs.Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		l.count("delete 404 (raced)")
	} else if l.outcome("delete", start, err) == unknown {
		return
	}
	start = time.Now()
	_, err = cs.Create(ctx, configSet(name, map[string]string{loadValueKey: value}), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		l.count("re-create 409 (raced)")
	} else {
		l.outcome("re-create", start, err)
	}
}

// configsetsClient is the ConfigSets client of one namespace.
type configsetsClient = configv1beta1client.ConfigSetInterface

// warningRecorder notes, per client, whether an answer said that the
// revision of its change was not written.
type warningRecorder struct {
	mu         sync.Mutex
	notWritten bool
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	if strings.Contains(text, notWrittenWarning) {
		w.mu.Lock()
		w.notWritten = true
		w.mu.Unlock()
	}
}

// take reports whether such a warning came since the last take.
func (w *warningRecorder) take() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.notWritten
	w.notWritten = false
	return seen
}

type result int

const (
	succeeded result = iota
	// failed: the request did not happen (it was refused before it was
	// sent, or answered with a 4xx, which is a violation of its own).
	failed
	// unknown: it may or may not have happened (5xx, 429, timeout, a
	// connection broken after the request was sent).
	unknown
)

// outcome counts a request's result and classifies it. A 5xx, a 429 or (when
// the server is expected to die mid-request) a broken connection is an
// unknown outcome; a refused connection (when the server is expected to be
// away) is a request that never happened; anything else is a violation.
func (l *load) outcome(verb string, start time.Time, err error) result {
	took := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if took > l.slowest {
		l.slowest = took
	}
	if took > l.opts.requestTimeout+answerGrace {
		l.violations = append(l.violations, fmt.Sprintf("%s took %v (request timeout %v): %v", verb, took.Round(time.Millisecond), l.opts.requestTimeout, err))
	}
	if err == nil {
		l.counts[verb+" ok"]++
		return succeeded
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := int(status.Status().Code)
		what := fmt.Sprintf("%s %d", verb, code)
		l.counts[what]++
		if _, ok := l.samples[what]; !ok {
			l.samples[what] = err.Error()
		}
		if code >= 500 || code == 429 {
			return unknown
		}
		l.violations = append(l.violations, fmt.Sprintf("%s: %d %v", verb, code, err))
		return failed
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		l.counts[verb+" client timeout"]++
		l.violations = append(l.violations, fmt.Sprintf("%s: no answer: %v", verb, err))
		return unknown
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		l.counts[verb+" connection refused"]++
		if !l.opts.refusedExpected {
			l.violations = append(l.violations, fmt.Sprintf("%s: %v", verb, err))
		}
		return failed
	}
	l.counts[verb+" connection broken"]++
	if !l.opts.brokenExpected {
		l.violations = append(l.violations, fmt.Sprintf("%s: %v", verb, err))
	}
	return unknown
}

// checkList: a successful list holds every key; a missing one is a lost object.
func (l *load) checkList(list *v1beta1.ConfigSetList) {
	seen := map[string]bool{}
	for _, cs := range list.Items {
		seen[cs.Name] = true
	}
	for _, k := range l.keys {
		if !seen[k] {
			l.violate("list at resourceVersion %s is missing %s", list.ResourceVersion, k)
		}
	}
}

func (l *load) addAcked(w ackedWrite) {
	l.mu.Lock()
	l.acked = append(l.acked, w)
	l.mu.Unlock()
}

func (l *load) violate(format string, args ...any) {
	l.mu.Lock()
	l.violations = append(l.violations, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *load) count(what string) {
	l.mu.Lock()
	l.counts[what]++
	l.mu.Unlock()
}

// Summary is one line per count, sorted.
func (l *load) Summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []string
	for k, v := range l.counts {
		lines = append(lines, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(lines)
	for k, v := range l.samples {
		lines = append(lines, fmt.Sprintf("\n  first %s: %s", k, v))
	}
	return strings.Join(lines, ", ")
}

// Acked returns the number of acknowledged writes (patches and creates).
func (l *load) Acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked) + len(l.ackedCreates)
}

// watcher follows the namespace: list, then watch from the list's
// resourceVersion; a closed watch resumes from the last resourceVersion it
// saw, a 410 relists. Its state must converge to what the server holds.
type watcher struct {
	l      *load
	id     int
	client versioned.Interface

	mu    sync.Mutex
	state map[string]harness.Register
}

func (w *watcher) run(ctx context.Context) {
	defer w.l.watchWG.Done()
	cs := w.client.ConfigV1beta1().ConfigSets(w.l.opts.namespace)
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			list, err := cs.List(ctx, metav1.ListOptions{})
			if err != nil {
				w.l.count("watcher list error")
				sleepCtx(ctx, 500*time.Millisecond)
				continue
			}
			w.mu.Lock()
			w.state = map[string]harness.Register{}
			for i := range list.Items {
				w.state[list.Items[i].Name] = register(&list.Items[i])
			}
			w.mu.Unlock()
			rv = list.ResourceVersion
			w.l.count("watcher list")
		}
		wi, err := cs.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				w.l.count("watcher 410 relist")
				rv = ""
				continue
			}
			w.l.count("watcher open error")
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		rv = w.consume(ctx, wi, rv)
		wi.Stop()
		if rv != "" && ctx.Err() == nil {
			w.l.count("watcher resume")
		}
	}
}

// consume reads events until the watch ends and returns the resourceVersion
// to resume from ("" to relist).
func (w *watcher) consume(ctx context.Context, wi watch.Interface, rv string) string {
	last, _ := strconv.ParseInt(rv, 10, 64)
	for ev := range wi.ResultChan() {
		switch ev.Type {
		case watch.Error:
			if ctx.Err() != nil {
				return rv
			}
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				w.l.count("watcher 410 relist")
				return ""
			}
			w.l.count("watcher error event")
			return rv
		case watch.Bookmark:
			if m, err := metaRV(ev.Object); err == nil {
				rv = m
			}
			continue
		}
		cs, ok := ev.Object.(*v1beta1.ConfigSet)
		if !ok {
			w.l.violate("watcher %d: unexpected object %T", w.id, ev.Object)
			continue
		}
		n, _ := strconv.ParseInt(cs.ResourceVersion, 10, 64)
		if n <= last {
			w.l.violate("watcher %d: event for %s at resourceVersion %d after %d: out of order", w.id, cs.Name, n, last)
		}
		last, rv = n, cs.ResourceVersion
		w.mu.Lock()
		if ev.Type == watch.Deleted {
			delete(w.state, cs.Name)
		} else {
			w.state[cs.Name] = register(cs)
		}
		w.mu.Unlock()
		w.l.count("watcher event")
	}
	return rv
}

func metaRV(obj interface{}) (string, error) {
	cs, ok := obj.(*v1beta1.ConfigSet)
	if !ok {
		return "", fmt.Errorf("bookmark of %T", obj)
	}
	return cs.ResourceVersion, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Verify stops the load and checks, against the server behind cfg: no
// violations; the history is linearizable (with a final read of every key
// appended); every acknowledged write is present, with its revision; revision
// history is complete; and the watchers converged to the final state.
func (l *load) Verify(ctx context.Context, t *testing.T, cfg *restclient.Config) {
	t.Helper()
	l.Stop()
	c := *cfg
	c.QPS = -1
	cs := versioned.NewForConfigOrDie(&c)
	sets := cs.ConfigV1beta1().ConfigSets(l.opts.namespace)

	final := map[string]harness.Register{}
	for _, k := range l.keys {
		call := l.hist.Now()
		out, err := sets.Get(ctx, k, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("final read of %s: %v", k, err)
		}
		final[k] = register(out)
		l.hist.Done(loadClients, harness.RegisterOp{Key: k}, call, final[k])
	}

	l.mu.Lock()
	violations := append([]string(nil), l.violations...)
	acked := append([]ackedWrite(nil), l.acked...)
	ackedCreates := append([]string(nil), l.ackedCreates...)
	l.mu.Unlock()
	for i, v := range violations {
		if i == 20 {
			t.Errorf("... and %d more violations", len(violations)-20)
			break
		}
		t.Errorf("violation: %s", v)
	}

	res := l.hist.Check(2*time.Minute, t.TempDir())
	t.Logf("history: %d operations (%d writes of unknown outcome), porcupine: %s", res.Operations, res.Unknown, res.Result)
	if res.Result != porcupine.Ok {
		t.Errorf("history is not linearizable (%s); visualization: %s", res.Result, res.Visualization)
	}

	for _, name := range ackedCreates {
		if _, err := sets.Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("acknowledged create of %s: %v", name, err)
		}
	}

	// Every key's kept revisions run from the oldest its limit keeps to its
	// current revision without a gap, and none older is left (the
	// reconciler restores a missing revision after its grace period and
	// prunes what a request could not); every re-created key's revisions are
	// its own. Then each acknowledged write's revision holds what it wrote,
	// by whom.
	var revs map[string]*v1beta1.ConfigRevision
	var problems []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := cs.ConfigV1beta1().ConfigRevisions(l.opts.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("listing revisions: %v", err)
		}
		revs = map[string]*v1beta1.ConfigRevision{}
		for i := range list.Items {
			revs[list.Items[i].Name] = &list.Items[i]
		}
		problems = l.historyProblems(ctx, t, sets, final, revs)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(problems) > 0 {
		t.Errorf("%d history problems after 30s: %v", len(problems), problems[:min(len(problems), 20)])
	}
	lost, rollbacks, restored := 0, 0, 0
	for _, w := range acked {
		if w.revision <= final[w.key].Revision-l.limits[w.key] {
			continue // pruned by its limit
		}
		rev := revs[config.RevisionName(w.key, w.revision)]
		if bad := checkRevision(w, rev); bad != "" {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged write %s=%q at revision %d: %s", w.key, w.value, w.revision, bad)
			}
			continue
		}
		if w.rollbackOf != 0 {
			rollbacks++
		}
		if rev.Author == history.ReconcilerUser {
			restored++
		}
	}
	t.Logf("acknowledged rollbacks: %d; acknowledged writes whose revision the reconciler restored: %d", rollbacks, restored)

	// Watchers converge to the final state of every key.
	var diverged []string
	deadline = time.Now().Add(30 * time.Second)
	for {
		diverged = diverged[:0]
		for _, w := range l.watchers {
			w.mu.Lock()
			for k, want := range final {
				if got := w.state[k]; got != want {
					diverged = append(diverged, fmt.Sprintf("watcher %d: %s is %+v, server %+v", w.id, k, got, want))
				}
			}
			w.mu.Unlock()
		}
		if len(diverged) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.StopWatchers()
	if len(diverged) > 0 {
		t.Errorf("watchers did not converge in 30s: %v", diverged)
	}
	t.Logf("load: %s", l.Summary())
	t.Logf("acknowledged writes: %d patches and creates (%d creates), lost: %d; slowest request %v",
		len(acked)+len(ackedCreates), len(ackedCreates), lost, l.slowestRequest().Round(time.Millisecond))
}

// historyProblems lists what is wrong with the revisions in revs, against the
// final state of the keys and what storage holds for the re-created keys.
func (l *load) historyProblems(ctx context.Context, t *testing.T, sets configsetsClient, final map[string]harness.Register, revs map[string]*v1beta1.ConfigRevision) []string {
	byKey := map[string][]*v1beta1.ConfigRevision{}
	for _, r := range revs {
		byKey[r.ConfigSetName] = append(byKey[r.ConfigSetName], r)
	}
	var problems []string
	for _, k := range l.keys {
		oldest := max(1, final[k].Revision-l.limits[k]+1)
		for n := oldest; n <= final[k].Revision; n++ {
			if name := config.RevisionName(k, n); revs[name] == nil {
				problems = append(problems, "missing "+name)
			}
		}
		for _, r := range byKey[k] {
			if r.Revision < oldest {
				problems = append(problems, fmt.Sprintf("%s kept beyond the limit of %d", r.Name, l.limits[k]))
			}
		}
	}
	for _, k := range l.recreate {
		cur, err := sets.Get(ctx, k, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			for _, r := range byKey[k] {
				problems = append(problems, r.Name+" outlived its deleted ConfigSet")
			}
			continue
		case err != nil:
			t.Fatalf("reading %s: %v", k, err)
		}
		for _, r := range byKey[k] {
			if len(r.OwnerReferences) != 1 || r.OwnerReferences[0].UID != cur.UID {
				problems = append(problems, fmt.Sprintf("%s belongs to an earlier %s", r.Name, k))
			}
		}
		for n := int64(1); n <= cur.Status.CurrentRevision; n++ {
			if name := config.RevisionName(k, n); revs[name] == nil {
				problems = append(problems, "missing "+name+" of the re-created "+k)
			}
		}
	}
	return problems
}

// checkRevision says what is wrong with rev as the revision of w, or "".
func checkRevision(w ackedWrite, rev *v1beta1.ConfigRevision) string {
	switch {
	case rev == nil:
		return "no revision"
	case rev.Data[loadValueKey] != w.value:
		return fmt.Sprintf("revision holds %q", rev.Data[loadValueKey])
	}
	secret, hasSecret := rev.SecretData[loadSecretKey]
	if w.value == "init" {
		if hasSecret {
			return "revision holds a secret entry the state it records did not have"
		}
	} else if string(secret) != w.value {
		return "revision holds another secret entry than the one written"
	}
	switch {
	case rev.Author == loadUser:
	case rev.Author == history.ReconcilerUser && w.warned:
	default:
		return fmt.Sprintf("author %q (the answer warned that the revision was not written: %v)", rev.Author, w.warned)
	}
	// A rollback to entries equal to the current ones writes no revision;
	// the current one then restored the same entries itself, or is the target.
	// A revision the reconciler restored cannot say it was a rollback: the
	// ConfigSet it is restored from does not record that (docs/history.md).
	if w.rollbackOf != 0 && rev.RollbackOf == 0 && rev.Revision != w.rollbackOf && rev.Author != history.ReconcilerUser {
		return fmt.Sprintf("rollback to %d recorded as a plain change", w.rollbackOf)
	}
	return ""
}

func (l *load) slowestRequest() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slowest
}
