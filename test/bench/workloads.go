package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"capstan.dev/capstan/pkg/apis/config"
	configv1beta1 "capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/controller/projection"
	"capstan.dev/capstan/test/utils/controlplane"
	"capstan.dev/capstan/test/utils/process"
)

// propagationNamespace holds the propagation workload's objects.
const propagationNamespace = "bench-propagation"

// propagationWorkload names the workload in the results.
const propagationWorkload = "propagation: ConfigSet change to pod templates"

// runPropagation measures, through kube-apiserver, the time from a
// ConfigSet change (its acknowledgement) to the pod templates of every
// Deployment that consumes it pointing at the new revision, with
// capstan-controller-manager doing the work; changes come at a steady rate,
// round-robin over the ConfigSets. It also records the controller manager's
// CPU and memory.
func (r *runner) runPropagation(ctx context.Context, b *benchCluster) error {
	s := r.sizes
	m := Measurement{System: "O-agg", Workload: propagationWorkload}
	pid, err := b.controllerManagerPID(ctx)
	if err != nil {
		return err
	}
	capstan, err := capstanClient(b.admin)
	if err != nil {
		return err
	}
	core, err := kubernetes.NewForConfig(restConfigForBench(b.admin))
	if err != nil {
		return err
	}
	if _, err := core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: propagationNamespace}},
		metav1.CreateOptions{}); err != nil {
		return err
	}

	// Which revision each Deployment's template points at, as seen by an informer.
	var mu sync.Mutex
	reached := map[string]map[int64]int{}    // ConfigSet → revision → Deployments there
	done := map[string]map[int64]time.Time{} // ConfigSet → revision → when the last got there
	seen := map[string]int64{}               // Deployment → revision it points at
	observe := func(obj any) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			return
		}
		cs := d.Annotations[config.ConfigSetsAnnotation]
		rev := projection.TemplateRevision(d.Spec.Template.Annotations, cs)
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if rev == 0 || seen[d.Name] >= rev {
			return
		}
		seen[d.Name] = rev
		if reached[cs] == nil {
			reached[cs], done[cs] = map[int64]int{}, map[int64]time.Time{}
		}
		reached[cs][rev]++
		if reached[cs][rev] == s.PropagationDeployments {
			done[cs][rev] = now
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(core, 0, informers.WithNamespace(propagationNamespace))
	inf := factory.Apps().V1().Deployments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }}); err != nil {
		return err
	}
	ictx, stop := context.WithCancel(ctx)
	defer stop()
	factory.Start(ictx.Done())
	factory.WaitForCacheSync(ictx.Done())

	names := make([]string, s.PropagationConfigSets)
	for i := range names {
		names[i] = fmt.Sprintf("cfg-%03d", i)
		cs := newConfigSet(configv1beta1.SchemeGroupVersion.String(), propagationNamespace, names[i], i, smallShape)
		cs.Spec.Projection = &configv1beta1.ConfigSetProjection{PerRevision: true}
		if err := createWhenAuthorized(ctx, r, func() error {
			_, err := capstan.ConfigSets(propagationNamespace).Create(ctx, cs, metav1.CreateOptions{})
			return err
		}); err != nil {
			return err
		}
		for j := range s.PropagationDeployments {
			if _, err := core.AppsV1().Deployments(propagationNamespace).Create(ctx, consumer(names[i], j), metav1.CreateOptions{}); err != nil {
				return err
			}
		}
	}
	waitAll := func(rev func(cs string) int64, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for {
			missing := 0
			mu.Lock()
			for _, n := range names {
				if _, ok := done[n][rev(n)]; !ok {
					missing++
				}
			}
			mu.Unlock()
			if missing == 0 {
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%d ConfigSets' Deployments not at their revision after %s", missing, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	setup := time.Now()
	if err := waitAll(func(string) int64 { return 1 }, 5*time.Minute); err != nil {
		return err
	}
	r.log("propagation: %d ConfigSets, %d Deployments each, all at revision 1 in %.1fs", len(names),
		s.PropagationDeployments, time.Since(setup).Seconds())

	// Changes at a steady rate; each ConfigSet's next change comes only
	// after every other ConfigSet changed, so several are in flight at once.
	type change struct {
		cs  string
		rev int64
		at  time.Time
	}
	var (
		changes  []change
		errs     int
		firstErr string
		wg       sync.WaitGroup
		cmu      sync.Mutex
	)
	cpu0 := process.CPUSeconds(pid)
	interval := time.Second / time.Duration(s.PropagationRate)
	tick := time.NewTicker(interval)
	start := time.Now()
	// Each change is sent on its tick, whatever the latency of the ones before.
	for i := range s.PropagationChanges {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := names[i%len(names)]
			patch := fmt.Sprintf(`{"spec":{"data":{"setting.000":%q}}}`, fmt.Sprintf("change-%d", i))
			cs, err := capstan.ConfigSets(propagationNamespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			at := time.Now()
			cmu.Lock()
			defer cmu.Unlock()
			if err != nil {
				errs++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			changes = append(changes, change{cs: name, rev: cs.Status.CurrentRevision, at: at})
		}()
	}
	tick.Stop()
	wg.Wait()
	sent := time.Since(start)
	latest := map[string]int64{}
	for _, c := range changes {
		latest[c.cs] = max(latest[c.cs], c.rev)
	}
	if err := waitAll(func(n string) int64 { return max(latest[n], 1) }, 5*time.Minute); err != nil {
		m.Errors++
		m.FirstError = err.Error()
	}
	elapsed := time.Since(start)
	cpu := process.CPUSeconds(pid) - cpu0

	var lat []time.Duration
	mu.Lock()
	for _, c := range changes {
		if t, ok := done[c.cs][c.rev]; ok {
			lat = append(lat, max(t.Sub(c.at), 0))
		} else {
			// A revision overtaken by the next change of the same ConfigSet
			// before it reached every Deployment is not a loss; it is counted
			// as not measured.
			m.Extra = addExtra(m.Extra, "overtaken", 1)
		}
	}
	mu.Unlock()
	m.Ops = len(lat)
	m.Errors += errs
	if m.FirstError == "" {
		m.FirstError = firstErr
	}
	m.Seconds = elapsed.Seconds()
	m.PerSecond = float64(len(changes)) / sent.Seconds()
	m.P50ms, m.P99ms = percentile(lat, 50), percentile(lat, 99)
	m.Extra = addExtra(m.Extra, "configSets", float64(len(names)))
	m.Extra = addExtra(m.Extra, "deploymentsPerConfigSet", float64(s.PropagationDeployments))
	m.Extra = addExtra(m.Extra, "controllerManagerCPUSeconds", cpu)
	m.Extra = addExtra(m.Extra, "controllerManagerCPUmsPerChange", 1000*cpu/float64(max(len(changes), 1)))
	m.Extra = addExtra(m.Extra, "controllerManagerRSSMiB", rssMiB(pid))
	r.add(m)
	r.log("propagation: %d changes at %d/s, p50 %.0fms p99 %.0fms; controller manager %.2f CPU s, RSS %.0f MiB",
		len(changes), s.PropagationRate, m.P50ms, m.P99ms, cpu, m.Extra["controllerManagerRSSMiB"])
	return nil
}

// createWhenAuthorized retries create while Capstan, restarted by the bench
// moments ago, still refuses the admin as system:anonymous, and says how long
// that lasted.
func createWhenAuthorized(ctx context.Context, r *runner, create func() error) error {
	start := time.Now()
	for {
		err := create()
		if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "system:anonymous") {
			if time.Since(start) > time.Second {
				r.log("propagation: Capstan authenticated the aggregator's requests only after %.1fs", time.Since(start).Seconds())
			}
			return err
		}
		if time.Since(start) > time.Minute || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func addExtra(m map[string]float64, k string, v float64) map[string]float64 {
	if m == nil {
		m = map[string]float64{}
	}
	m[k] += v
	return m
}

// consumer is a Deployment of zero replicas (the control plane has no
// kubelet) that consumes the ConfigSet through envFrom.
func consumer(configSet string, j int) *appsv1.Deployment {
	name := fmt.Sprintf("%s-d%02d", configSet, j)
	labels := map[string]string{"app": name}
	zero := int32(0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{config.ConfigSetsAnnotation: configSet}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.example.com/app:v1",
					EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: configSet}}}},
				}}},
			},
		},
	}
}

// controllerManagerPID returns the running controller manager's PID,
// starting one when the cluster's replica stopped: it exits when it cannot
// renew its lease, as happens while the bench restarts kube-apiserver.
func (b *benchCluster) controllerManagerPID(ctx context.Context) (int, error) {
	if p := b.c.Process(controlplane.ProcessControllerManager); p != nil && p.Running() {
		return p.PID, nil
	}
	p, err := b.c.StartControllerManager(ctx, controlplane.ProcessControllerManager+"-bench")
	if err != nil {
		return 0, fmt.Errorf("starting capstan-controller-manager: %w", err)
	}
	return p.PID, nil
}
