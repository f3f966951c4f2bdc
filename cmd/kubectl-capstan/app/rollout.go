package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/printers"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// rolloutPollInterval is how often rollout status gets the ConfigSet from a
// server that cannot watch it, and how long it waits before watching again
// when the server ends a watch.
const rolloutPollInterval = time.Second

// consumerColumns are the columns of `kubectl capstan rollout status`.
var consumerColumns = []metav1.TableColumnDefinition{
	{Name: "Kind", Type: "string", Description: "The kind of the workload: Deployment, StatefulSet or DaemonSet."},
	{Name: "Name", Type: "string", Description: "The name of the workload."},
	{Name: "Revision", Type: "integer", Description: "The ConfigSet revision the workload's pod template refers to."},
	{Name: "Rolled-Out", Type: "boolean", Description: "Whether every replica of the workload runs that pod template."},
}

func newRolloutCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout SUBCOMMAND",
		Short: "Follow the rollout of a ConfigSet's revisions to the workloads that consume it",
		Long: `Follow the rollout of a ConfigSet's revisions to the workloads that consume it, as
capstan-controller-manager reports it in the ConfigSet's status.projection.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newRolloutStatusCommand(e))
	return cmd
}

type rolloutStatusOptions struct {
	*env
	watch    bool
	timeout  time.Duration
	interval time.Duration
}

func newRolloutStatusCommand(e *env) *cobra.Command {
	o := &rolloutStatusOptions{env: e, interval: rolloutPollInterval}
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show how far the workloads that consume a ConfigSet run its current revision",
		Long: `Show how far the workloads that consume a ConfigSet (Deployments, StatefulSets and
DaemonSets with the annotation config.capstan.dev/configsets) run its current revision.

The first line gives the ConfigSet's revision, the revision last projected into
ConfigMaps and Secrets and the revision the workloads were last pointed at, or "not
projected" when the ConfigSet has no spec.projection. The table lists each consumer with
the revision its pod template refers to and whether every replica runs that template.

With --watch, the default, the command waits until every consumer refers to the current
revision and is rolled out (and, for a projected ConfigSet, the current revision is
projected), printing the status again whenever it changes; it fails if --timeout passes
first. --watch=false prints the status once.`,
		Example: `  # Wait for the workloads to run the current revision, for at most 5 minutes
  kubectl capstan rollout status checkout -n shop --timeout 5m

  # Print the status once
  kubectl capstan rollout status checkout --watch=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0])
		},
	}
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", true, "Wait until the rollout of the current revision is complete, printing the status whenever it changes.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "How long --watch waits before giving up, for example 5m; 0 waits without a limit.")
	return cmd
}

func (o *rolloutStatusOptions) run(ctx context.Context, name string) error {
	if o.timeout < 0 {
		return fmt.Errorf("invalid --timeout %s: use a duration of at least 0, where 0 waits without a limit", o.timeout)
	}
	client, namespace, err := o.client()
	if err != nil {
		return err
	}
	if o.watch && o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.timeout,
			fmt.Errorf("timed out after %s (--timeout) waiting for the rollout of configset/%s", o.timeout, name))
		defer cancel()
	}
	p := &rolloutPrinter{out: o.streams.Out, errOut: o.streams.ErrOut, namespace: namespace}
	cs, err := getConfigSet(ctx, client, namespace, name)
	if err != nil {
		return stopped(ctx, err)
	}
	if err := p.print(cs); err != nil {
		return err
	}
	if !o.watch {
		return nil
	}
	if cs, err = o.wait(ctx, client, namespace, cs, p); err != nil {
		return stopped(ctx, err)
	}
	fmt.Fprintf(o.streams.Out, "configset/%s: rollout of revision %d complete\n", name, cs.Status.CurrentRevision)
	return nil
}

// stopped returns why ctx ended, for example the timeout, if it did, else err:
// a request cut short by the timeout fails with an error that does not say so.
func stopped(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

// wait follows the ConfigSet from cs on until its rollout is complete,
// printing it whenever it changes, and returns it as it is then. It watches
// the ConfigSet, and gets it anew and watches again after a pause when the
// server ends the watch; from a server that cannot watch it gets the
// ConfigSet every interval.
func (o *rolloutStatusOptions) wait(ctx context.Context, client versioned.Interface, namespace string, cs *v1beta1.ConfigSet, p *rolloutPrinter) (*v1beta1.ConfigSet, error) {
	canWatch := true
	for !rolloutComplete(cs) {
		if canWatch {
			var err error
			if cs, canWatch, err = watchConfigSet(ctx, client, namespace, cs, p); err != nil {
				return nil, err
			}
			if rolloutComplete(cs) {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(o.interval):
		}
		var err error
		if cs, err = getConfigSet(ctx, client, namespace, cs.Name); err != nil {
			return nil, err
		}
		if err := p.print(cs); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// watchConfigSet watches the ConfigSet from cs on, printing every state it
// sees, until its rollout is complete or the watch ends. It returns the last
// state seen, and false if the server cannot watch ConfigSets.
func watchConfigSet(ctx context.Context, client versioned.Interface, namespace string, cs *v1beta1.ConfigSet, p *rolloutPrinter) (*v1beta1.ConfigSet, bool, error) {
	name := cs.Name
	w, err := client.ConfigV1beta1().ConfigSets(namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion: cs.ResourceVersion,
	})
	if apierrors.IsMethodNotSupported(err) {
		return cs, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("watching configset/%s: %w", name, err)
	}
	defer w.Stop()
	for {
		var ev watch.Event
		var open bool
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case ev, open = <-w.ResultChan():
		}
		if !open {
			return cs, true, nil
		}
		switch ev.Type {
		case watch.Added, watch.Modified:
			// The name is checked again in case a server or a fake ignores
			// the field selector.
			got, ok := ev.Object.(*v1beta1.ConfigSet)
			if !ok || got.Name != name {
				continue
			}
			cs = got
			if err := p.print(cs); err != nil {
				return nil, false, err
			}
			if rolloutComplete(cs) {
				return cs, true, nil
			}
		case watch.Deleted:
			if got, ok := ev.Object.(*v1beta1.ConfigSet); ok && got.Name == name {
				return nil, false, fmt.Errorf("configset/%s was deleted while waiting for its rollout", name)
			}
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				// The resource version is too old to watch from: get the
				// ConfigSet anew.
				return cs, true, nil
			}
			return nil, false, fmt.Errorf("watching configset/%s: %w", name, err)
		}
	}
}

// rolloutComplete tells whether the pod template of every consumer refers to
// the ConfigSet's current revision and every replica runs it, and, when the
// ConfigSet is projected, whether its current revision is.
func rolloutComplete(cs *v1beta1.ConfigSet) bool {
	st := cs.Status.Projection
	if cs.Spec.Projection != nil && (st == nil || st.Revision != cs.Status.CurrentRevision) {
		return false
	}
	if st == nil {
		return true
	}
	for _, c := range st.Consumers {
		if c.Revision != cs.Status.CurrentRevision || !c.RolledOut {
			return false
		}
	}
	return true
}

// rolloutSummary is the first line of the status:
// "configset/web: revision 8, projected 8, workloads pointed at 8".
func rolloutSummary(cs *v1beta1.ConfigSet) string {
	s := fmt.Sprintf("configset/%s: revision %d", cs.Name, cs.Status.CurrentRevision)
	if cs.Spec.Projection == nil {
		return s + ", not projected"
	}
	var projected, pointed int64
	if st := cs.Status.Projection; st != nil {
		projected, pointed = st.Revision, st.RolloutRevision
	}
	if projected == 0 {
		s += ", not projected yet"
	} else {
		s += fmt.Sprintf(", projected %d", projected)
	}
	if pointed == 0 {
		s += ", workloads not pointed at a revision yet"
	} else {
		s += fmt.Sprintf(", workloads pointed at %d", pointed)
	}
	return s
}

// consumersTable builds the table of consumers, sorted by kind, then name.
func consumersTable(consumers []v1beta1.ConfigSetConsumer) *metav1.Table {
	sorted := slices.Clone(consumers)
	slices.SortStableFunc(sorted, func(a, b v1beta1.ConfigSetConsumer) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	table := &metav1.Table{ColumnDefinitions: consumerColumns}
	for _, c := range sorted {
		revision := none
		if c.Revision != 0 {
			revision = strconv.FormatInt(c.Revision, 10)
		}
		table.Rows = append(table.Rows, metav1.TableRow{Cells: []any{
			cellText(c.Kind), cellText(c.Name), revision, c.RolledOut,
		}})
	}
	return table
}

// rolloutPrinter prints the status of a ConfigSet's rollout when it differs
// from what it printed last.
type rolloutPrinter struct {
	out, errOut io.Writer
	namespace   string
	last        string
}

func (p *rolloutPrinter) print(cs *v1beta1.ConfigSet) error {
	var out bytes.Buffer
	fmt.Fprintln(&out, rolloutSummary(cs))
	var consumers []v1beta1.ConfigSetConsumer
	if cs.Status.Projection != nil {
		consumers = cs.Status.Projection.Consumers
	}
	note := ""
	if len(consumers) == 0 {
		note = fmt.Sprintf("No consumers of configset/%s found in namespace %q.\n", cs.Name, p.namespace)
	} else if err := printers.NewTablePrinter(printers.PrintOptions{}).PrintObj(consumersTable(consumers), &out); err != nil {
		return fmt.Errorf("printing the consumers: %w", err)
	}
	if shown := out.String() + "\x00" + note; shown != p.last {
		p.last = shown
		if _, err := p.out.Write(out.Bytes()); err != nil {
			return fmt.Errorf("printing the status: %w", err)
		}
		fmt.Fprint(p.errOut, note)
	}
	return nil
}
