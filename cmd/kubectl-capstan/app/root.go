// Package app implements kubectl-capstan, the kubectl plugin that shows the
// history of Capstan ConfigSets, compares their revisions, rolls them back,
// exports their entries and follows their rollout to the workloads that
// consume them: `kubectl capstan history|diff|rollback|export|rollout status`.
package app

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"

	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// userAgent names the plugin in the server's audit log and metrics.
const userAgent = "kubectl-capstan"

// clientFunc returns a clientset and the namespace to work in.
type clientFunc func() (versioned.Interface, string, error)

// env is what every subcommand needs: where to print and how to reach the server.
type env struct {
	streams genericiooptions.IOStreams
	client  clientFunc
}

// NewCommand returns the root command of the plugin. It takes the standard
// kubectl connection flags (--kubeconfig, --context, -n/--namespace, --server,
// --token, …) through genericclioptions.ConfigFlags.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := newCommand(&env{streams: streams, client: configFlagsClient(flags, streams)})
	flags.AddFlags(cmd.PersistentFlags())
	return cmd
}

// newCommand builds the command tree around an env, so that tests can give it
// a fake clientset.
func newCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubectl-capstan",
		Short: "Show, compare, roll back and export the revisions of Capstan ConfigSets, and follow their rollout",
		Long: `Show, compare, roll back and export the revisions of Capstan ConfigSets, and follow
their rollout to the workloads that consume them.

Every change of a ConfigSet's entries makes a ConfigRevision on the server; these
commands read those revisions and call the ConfigSet's rollback subresource. export
prints the entries of a revision for CI jobs and machines outside the cluster, and
rollout status reports which revision the consuming workloads run, as
capstan-controller-manager records it in the ConfigSet's status.`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl capstan",
		},
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		SilenceUsage:      true,
		SilenceErrors:     true,
		Args:              cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.SetIn(e.streams.In)
	cmd.SetOut(e.streams.Out)
	cmd.SetErr(e.streams.ErrOut)
	cmd.AddCommand(newHistoryCommand(e), newDiffCommand(e), newRollbackCommand(e), newExportCommand(e), newRolloutCommand(e))
	return cmd
}

// configFlagsClient builds the clientset from the kubectl flags and
// kubeconfig, printing the server's warnings (for example from ConfigPolicies
// in Warn mode) the way kubectl does.
func configFlagsClient(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) clientFunc {
	return func() (versioned.Interface, string, error) {
		namespace, _, err := flags.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return nil, "", fmt.Errorf("finding the namespace: %w", err)
		}
		cfg, err := flags.ToRESTConfig()
		if err != nil {
			return nil, "", fmt.Errorf("loading the client configuration: %w", err)
		}
		cfg = rest.CopyConfig(cfg)
		cfg.UserAgent = userAgent
		cfg.WarningHandler = rest.NewWarningWriter(streams.ErrOut, rest.WarningWriterOptions{Deduplicate: true})
		client, err := versioned.NewForConfig(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("making the client: %w", err)
		}
		return client, namespace, nil
	}
}
