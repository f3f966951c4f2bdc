package app

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"capstan.dev/capstan/cmd/kubectl-capstan/linediff"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
)

// diffContext is the number of unchanged lines around each change, as diff -u.
const diffContext = 3

// currentArg names the ConfigSet's current entries instead of a revision number.
const currentArg = "current"

type diffOptions struct {
	*env
	showSecrets bool
}

func newDiffCommand(e *env) *cobra.Command {
	o := &diffOptions{env: e}
	cmd := &cobra.Command{
		Use:   "diff NAME REV [REV2]",
		Short: "Show how the entries of a ConfigSet changed between two revisions",
		Long: `Show how the entries of a ConfigSet changed from revision REV to revision REV2, as a
unified diff. Without REV2, or with REV2 "current", it compares with the ConfigSet's
current entries.

Each entry is a line KEY=value, sorted by key; the further lines of a multi-line
value are indented under the first. Secret values are masked as their size and a
fingerprint, which differs when the value differs; the fingerprints are keyed anew
on every run, so they can only be compared within one output. --show-secrets prints
the values.

The exit status is 0 whether or not the revisions differ ("no differences" is
printed when they do not), and 1 on errors.`,
		Example: `  # What changed since revision 3
  kubectl capstan diff checkout 3

  # What changed from revision 3 to revision 5, secrets included
  kubectl capstan diff checkout 3 5 --show-secrets`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			to := currentArg
			if len(args) == 3 {
				to = args[2]
			}
			return o.run(cmd.Context(), args[0], args[1], to)
		},
	}
	cmd.Flags().BoolVar(&o.showSecrets, "show-secrets", false, "Print the values of secret entries instead of masking them.")
	return cmd
}

// diffSide is one of the two things a diff compares.
type diffSide struct {
	label      string
	data       map[string]string
	secretData map[string][]byte
}

func (o *diffOptions) run(ctx context.Context, name, fromArg, toArg string) error {
	from, err := parseDiffArg(fromArg)
	if err != nil {
		return err
	}
	to, err := parseDiffArg(toArg)
	if err != nil {
		return err
	}
	secrets, err := newSecretRenderer(o.showSecrets)
	if err != nil {
		return err
	}
	client, namespace, err := o.client()
	if err != nil {
		return err
	}
	cs, err := getConfigSet(ctx, client, namespace, name)
	if err != nil {
		return err
	}
	var revisions []v1beta1.ConfigRevision
	if from != 0 || to != 0 {
		if revisions, err = listRevisions(ctx, client, namespace, name); err != nil {
			return err
		}
	}
	side := func(n int64) (diffSide, error) {
		if n == 0 {
			return diffSide{
				label:      fmt.Sprintf("%s revision %d (current)", name, cs.Status.CurrentRevision),
				data:       cs.Spec.Data,
				secretData: cs.Spec.SecretData,
			}, nil
		}
		r, err := findRevision(revisions, name, n)
		if err != nil {
			return diffSide{}, err
		}
		return diffSide{label: fmt.Sprintf("%s revision %d", name, n), data: r.Data, secretData: r.SecretData}, nil
	}
	a, err := side(from)
	if err != nil {
		return err
	}
	b, err := side(to)
	if err != nil {
		return err
	}
	return writeDiff(o.streams.Out, a, b, secrets)
}

// parseDiffArg parses a revision argument; 0 stands for the current entries.
func parseDiffArg(s string) (int64, error) {
	if s == currentArg {
		return 0, nil
	}
	return parseRevision(s)
}

// writeDiff prints the unified diff of the entries of a and b, or "no
// differences".
func writeDiff(w io.Writer, a, b diffSide, secrets secretRenderer) error {
	out := linediff.Unified(a.label, b.label,
		entryLines(a.data, a.secretData, secrets),
		entryLines(b.data, b.secretData, secrets),
		diffContext)
	if out == "" {
		out = fmt.Sprintf("no differences between %s and %s\n", a.label, b.label)
	}
	_, err := io.WriteString(w, out)
	return err
}
