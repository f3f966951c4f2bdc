package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"

	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// none fills an empty cell, as kubectl does.
const none = "<none>"

// currentMark fills the CURRENT cell of the revision the ConfigSet is at.
const currentMark = "*"

// historyColumns are the columns of `kubectl capstan history`.
// CURRENT comes first, as in `kubectl config get-contexts`, so that its empty
// cells do not leave blanks at the ends of lines.
var historyColumns = []metav1.TableColumnDefinition{
	{Name: "Current", Type: "string", Description: "A * marks the ConfigSet's status.currentRevision."},
	{Name: "Revision", Type: "integer", Description: "The revision number."},
	{Name: "Author", Type: "string", Description: "The user whose request made the revision."},
	{Name: "Cause", Type: "string", Description: "The ConfigSet's config.capstan.dev/change-cause annotation at the time."},
	{Name: "Rollback-Of", Type: "integer", Description: "The revision a rollback restored, if the revision is a rollback."},
	{Name: "Keys", Type: "integer", Description: "The number of entries, data and secretData together."},
	{Name: "Age", Type: "string", Description: "How long ago the revision was made."},
}

type historyOptions struct {
	*env
	noHeaders bool
	now       func() time.Time
}

func newHistoryCommand(e *env) *cobra.Command {
	o := &historyOptions{env: e, now: time.Now}
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List the kept revisions of a ConfigSet, oldest first",
		Long: `List the kept revisions of a ConfigSet, oldest first, with who made each one and why.

CAUSE is the ConfigSet's config.capstan.dev/change-cause annotation when the revision was
made, ROLLBACK-OF the revision a rollback restored, and a * in CURRENT marks the revision
the ConfigSet is at, as in kubectl config get-contexts.`,
		Example: `  kubectl capstan history checkout -n shop`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args[0])
		},
	}
	cmd.Flags().BoolVar(&o.noHeaders, "no-headers", false, "Do not print the header line.")
	return cmd
}

func (o *historyOptions) run(ctx context.Context, name string) error {
	client, namespace, err := o.client()
	if err != nil {
		return err
	}
	cs, err := getConfigSet(ctx, client, namespace, name)
	if err != nil {
		return err
	}
	revisions, err := listRevisions(ctx, client, namespace, name)
	if err != nil {
		return err
	}
	if len(revisions) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No revisions of configset/%s found in namespace %q.\n", name, namespace)
		return nil
	}
	table := historyTable(revisions, cs.Status.CurrentRevision, o.now())
	if err := printers.NewTablePrinter(printers.PrintOptions{NoHeaders: o.noHeaders}).PrintObj(table, o.streams.Out); err != nil {
		return fmt.Errorf("printing the history: %w", err)
	}
	if _, err := findRevision(revisions, name, cs.Status.CurrentRevision); err != nil {
		// The server writes a revision right after the ConfigSet and repairs
		// it after a crash, so this only lasts a moment.
		fmt.Fprintf(o.streams.ErrOut, "Revision %d, the current one, is not recorded yet.\n", cs.Status.CurrentRevision)
	}
	return nil
}

// historyTable builds the table of revisions, in the order given.
func historyTable(revisions []v1beta1.ConfigRevision, current int64, now time.Time) *metav1.Table {
	table := &metav1.Table{ColumnDefinitions: historyColumns}
	for i := range revisions {
		r := &revisions[i]
		cause, rollbackOf, mark := none, none, ""
		if r.ChangeCause != "" {
			cause = r.ChangeCause
		}
		if r.RollbackOf != 0 {
			rollbackOf = strconv.FormatInt(r.RollbackOf, 10)
		}
		if r.Revision == current {
			mark = currentMark
		}
		author := r.Author
		if author == "" {
			author = none
		}
		table.Rows = append(table.Rows, metav1.TableRow{Cells: []any{
			mark, r.Revision, cellText(author), cellText(cause), rollbackOf, len(r.Data) + len(r.SecretData), age(r.CreationTimestamp, now),
		}})
	}
	return table
}

// cellText keeps tabs in a cell from breaking the columns; the table printer
// itself cuts a cell at a line break and escapes terminal controls.
func cellText(s string) string {
	return strings.ReplaceAll(s, "\t", " ")
}

// age formats how long ago t was, as kubectl's AGE column does.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}
