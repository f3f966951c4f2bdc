package app

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// Values of --dry-run.
const (
	dryRunNone   = "none"
	dryRunServer = "server"
	dryRunClient = "client"
)

type rollbackOptions struct {
	*env
	to     int64
	dryRun string
}

func newRollbackCommand(e *env) *cobra.Command {
	o := &rollbackOptions{env: e}
	cmd := &cobra.Command{
		Use:   "rollback NAME --to N",
		Short: "Restore the entries of a kept revision of a ConfigSet as a new revision",
		Long: `Restore the entries of revision N of a ConfigSet as a new revision, through the
ConfigSet's rollback subresource. The new revision records N in ROLLBACK-OF. ConfigPolicies
apply to a rollback as to any other change.

--dry-run=server (or just --dry-run) asks the server to check the rollback without storing it.`,
		Example: `  kubectl capstan rollback checkout --to 3
  kubectl capstan rollback checkout --to 3 --dry-run=server`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("to") {
				return fmt.Errorf("--to is required: name the revision to restore (see kubectl capstan history %s)", args[0])
			}
			return o.run(cmd.Context(), args[0])
		},
	}
	cmd.Flags().Int64Var(&o.to, "to", 0, "The revision whose entries to restore.")
	cmd.Flags().StringVar(&o.dryRun, "dry-run", dryRunNone, `"none" or "server": with "server", the server checks the rollback without storing it.`)
	cmd.Flags().Lookup("dry-run").NoOptDefVal = dryRunServer
	return cmd
}

func (o *rollbackOptions) run(ctx context.Context, name string) error {
	if o.to < 1 {
		return fmt.Errorf("invalid revision %d for --to: a revision is a whole number of at least 1", o.to)
	}
	var opts metav1.CreateOptions
	switch o.dryRun {
	case dryRunNone:
	case dryRunServer:
		opts.DryRun = []string{metav1.DryRunAll}
	case dryRunClient:
		return fmt.Errorf(`--dry-run=client is not supported: only the server knows the revisions it kept; use --dry-run=server`)
	default:
		return fmt.Errorf(`invalid --dry-run %q: use "none" or "server"`, o.dryRun)
	}
	client, namespace, err := o.client()
	if err != nil {
		return err
	}
	// The ConfigSet as it was tells a missing ConfigSet from a missing
	// revision, and whether the rollback changed anything.
	before, err := getConfigSet(ctx, client, namespace, name)
	if err != nil {
		return err
	}
	after, err := client.ConfigV1beta1().ConfigSets(namespace).Rollback(ctx, name, &v1beta1.ConfigSetRollback{Revision: o.to}, opts)
	switch {
	case apierrors.IsNotFound(err):
		revisions, listErr := listRevisions(ctx, client, namespace, name)
		if listErr != nil {
			return fmt.Errorf("cannot roll back configset/%s to revision %d: %w", name, o.to, err)
		}
		if _, notKept := findRevision(revisions, name, o.to); notKept != nil {
			return notKept
		}
		// The revision is there, so the ConfigSet went away meanwhile.
		return fmt.Errorf("cannot roll back configset/%s: %w", name, err)
	case apierrors.IsConflict(err):
		if before.Spec.Immutable != nil && *before.Spec.Immutable {
			return fmt.Errorf("cannot roll back configset/%s: it is immutable (spec.immutable is true), so its entries can no longer change", name)
		}
		return fmt.Errorf("cannot roll back configset/%s to revision %d: %w", name, o.to, err)
	case err != nil:
		return fmt.Errorf("cannot roll back configset/%s to revision %d: %w", name, o.to, err)
	}

	suffix := ""
	if o.dryRun == dryRunServer {
		suffix = " (server dry run)"
	}
	if after.Status.CurrentRevision == before.Status.CurrentRevision {
		fmt.Fprintf(o.streams.Out, "configset/%s already has the entries of revision %d (still revision %d)%s\n",
			name, o.to, after.Status.CurrentRevision, suffix)
		return nil
	}
	fmt.Fprintf(o.streams.Out, "configset/%s rolled back to revision %d (now revision %d)%s\n",
		name, o.to, after.Status.CurrentRevision, suffix)
	return nil
}
