package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	componentbaseconfig "k8s.io/component-base/config"
	"k8s.io/component-base/logs"
	"k8s.io/component-base/term"
	controllermanager "k8s.io/controller-manager/app"
	controllerhealthz "k8s.io/controller-manager/pkg/healthz"
	"k8s.io/klog/v2"

	// Client-go's metrics (requests, leader election) on /metrics.
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/clientgo/leaderelection"

	"capstan.dev/capstan/pkg/controller/projection"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
	informers "capstan.dev/capstan/pkg/generated/informers/externalversions"
)

// userAgent names the controller manager in kube-apiserver's and Capstan's audit logs.
const userAgent = "capstan-controller-manager"

// NewCommand returns the capstan-controller-manager command; it runs until ctx ends.
func NewCommand(ctx context.Context) *cobra.Command {
	o := NewOptions()
	cmd := &cobra.Command{
		Use:   "capstan-controller-manager",
		Short: "Project ConfigSets into ConfigMaps and Secrets and roll the workloads that use them",
		Long: "capstan-controller-manager projects ConfigSets that ask for it into ConfigMaps and Secrets, " +
			"points the Deployments, StatefulSets and DaemonSets that name them in the " +
			"config.capstan.dev/configsets annotation at their current revision, and prunes what no " +
			"workload uses any more. Several replicas may run; one leads through a Lease.",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.SetContext(ctx)
	fss := o.Flags()
	// The log flags come from Options.Logs.
	globalflag.AddGlobalFlags(fss.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	for _, f := range fss.FlagSets {
		cmd.Flags().AddFlagSet(f)
	}
	cols, _, _ := term.TerminalSize(cmd.OutOrStdout())
	cliflag.SetUsageAndHelpFunc(cmd, fss, cols)
	return cmd
}

// restConfig loads the kubeconfig, or the in-cluster configuration without one.
func (o *Options) restConfig() (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if o.Kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the client configuration: %w", err)
	}
	cfg.QPS = o.KubeAPIQPS
	cfg.Burst = int(o.KubeAPIBurst)
	return rest.AddUserAgent(cfg, userAgent), nil
}

// Run serves /healthz and /metrics, takes part in the leader election and
// runs the controllers while it leads, until ctx ends. A replica that loses
// the lease exits, as kube-controller-manager does, so that it restarts
// with empty caches and never acts on a stale view beside the new leader.
func (o *Options) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	capstan, err := versioned.NewForConfig(cfg)
	if err != nil {
		return err
	}

	var checks []healthz.HealthChecker
	var electionChecker *leaderelection.HealthzAdaptor
	if o.LeaderElection.LeaderElect {
		electionChecker = leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
		checks = append(checks, electionChecker)
	}
	healthzHandler := controllerhealthz.NewMutableHealthzHandler(checks...)
	if err := o.serve(ctx, healthzHandler); err != nil {
		return err
	}

	run := func(ctx context.Context) {
		if err := runControllers(ctx, o, kube, capstan, healthzHandler); err != nil {
			logger.Error(err, "Running the controllers")
			klog.FlushAndExit(klog.ExitFlushTimeout, 1)
		}
	}
	if !o.LeaderElection.LeaderElect {
		run(ctx)
		return nil
	}

	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("getting the host name for the lease identity: %w", err)
	}
	// A unique identity, so that two replicas on one host never share the lease.
	id := host + "_" + uuid.NewString()
	le := o.LeaderElection
	lock, err := resourcelock.NewFromKubeconfig(le.ResourceLock, le.ResourceNamespace, le.ResourceName,
		resourcelock.ResourceLockConfig{Identity: id}, cfg, le.RenewDeadline.Duration)
	if err != nil {
		return fmt.Errorf("creating the leader election lock: %w", err)
	}
	logger.Info("Starting leader election", "lease", le.ResourceNamespace+"/"+le.ResourceName, "identity", id)
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: le.LeaseDuration.Duration,
		RenewDeadline: le.RenewDeadline.Duration,
		RetryPeriod:   le.RetryPeriod.Duration,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: run,
			OnStoppedLeading: func() {
				select {
				case <-ctx.Done():
					// Shutting down: the lease was released for the next leader.
					logger.Info("Released the lease")
				default:
					logger.Error(nil, "Lost the lease; exiting")
					klog.FlushAndExit(klog.ExitFlushTimeout, 1)
				}
			},
			OnNewLeader: func(identity string) {
				logger.Info("Leader", "identity", identity, "self", identity == id)
			},
		},
		WatchDog:        electionChecker,
		ReleaseOnCancel: true,
		Name:            le.ResourceName,
	})
	return nil
}

// serve starts the HTTPS server of /healthz and /metrics behind delegated
// authentication and authorization; /healthz is always allowed.
func (o *Options) serve(ctx context.Context, healthzHandler *controllerhealthz.MutableHealthzHandler) error {
	if o.SecureServing.BindPort == 0 {
		return nil
	}
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		return fmt.Errorf("creating a self-signed serving certificate: %w", err)
	}
	var serving *server.SecureServingInfo
	if err := o.SecureServing.ApplyTo(&serving); err != nil {
		return err
	}
	var authn server.AuthenticationInfo
	if err := o.Authentication.ApplyTo(&authn, serving, nil); err != nil {
		return err
	}
	var authz server.AuthorizationInfo
	if err := o.Authorization.ApplyTo(&authz); err != nil {
		return err
	}
	debugging := &componentbaseconfig.DebuggingConfiguration{}
	mux := controllermanager.NewBaseHandler(debugging, healthzHandler)
	handler := controllermanager.BuildHandlerChain(mux, &authz, &authn)
	_, _, err := serving.Serve(handler, 0, ctx.Done())
	return err
}

// runControllers starts the informers and the projection controller and
// blocks until ctx ends.
func runControllers(ctx context.Context, o *Options, kube kubernetes.Interface, capstan versioned.Interface,
	healthzHandler *controllerhealthz.MutableHealthzHandler) error {
	kubeInformers := kubeinformers.NewSharedInformerFactory(kube, o.Resync)
	projected := kubeinformers.NewSharedInformerFactoryWithOptions(kube, o.Resync,
		kubeinformers.WithTweakListOptions(projection.ProjectedListOptions))
	capstanInformers := informers.NewSharedInformerFactory(capstan, o.Resync)
	c, err := projection.New(kube, capstan, capstanInformers, kubeInformers, projected)
	if err != nil {
		return err
	}
	kubeInformers.Start(ctx.Done())
	projected.Start(ctx.Done())
	capstanInformers.Start(ctx.Done())
	healthzHandler.AddHealthChecker(controllerhealthz.NamedPingChecker("projection"))
	c.Run(ctx, o.ConcurrentSyncs)
	kubeInformers.Shutdown()
	projected.Shutdown()
	capstanInformers.Shutdown()
	return nil
}
