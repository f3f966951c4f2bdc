package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"capstan.dev/capstan/pkg/util/atomicfile"
)

// Values of --format.
const (
	formatEnv  = "env"
	formatJSON = "json"
	formatYAML = "yaml"
)

// Modes of the files --output-dir writes, and of the directory when it makes
// one for secret entries.
const (
	dataFileMode   fs.FileMode = 0o644
	secretFileMode fs.FileMode = 0o600
	dataDirMode    fs.FileMode = 0o755
	secretDirMode  fs.FileMode = 0o700
)

type exportOptions struct {
	*env
	revision    int64
	format      string
	showSecrets bool
	outputDir   string
}

func newExportCommand(e *env) *cobra.Command {
	o := &exportOptions{env: e}
	cmd := &cobra.Command{
		Use:   "export NAME",
		Short: "Print the entries of a ConfigSet at a revision, for CI jobs and machines outside the cluster",
		Long: `Print the entries of a ConfigSet, data and secretData together and sorted by key: its
current entries, or with --revision those of a kept revision.

--format env (the default) prints a line KEY='value' for each entry, quoted so that
"set -a; . FILE" or eval in a POSIX shell gives each variable exactly the value; keys that
are not shell variable names are an error. --format json and --format yaml print one
object mapping each key to its value.

Secret entries are left out unless --show-secrets is given; a note on standard error
says how many were.

--output-dir DIR writes each entry to the file DIR/KEY instead, holding exactly the
value, with mode 0600 for secret entries and 0644 for the others, and makes DIR if
it is missing. Files of keys that are not exported are left alone.`,
		Example: `  # Load the current entries, secrets included, into the environment of a CI job
  set -a; eval "$(kubectl capstan export checkout -n shop --show-secrets)"; set +a

  # The entries of revision 3 as JSON, secrets left out
  kubectl capstan export checkout --revision 3 --format json

  # One file per entry, as a volume of a Pod would have them
  kubectl capstan export checkout --show-secrets --output-dir /etc/checkout`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("revision") && o.revision < 1 {
				return fmt.Errorf("invalid revision %d for --revision: a revision is a whole number of at least 1", o.revision)
			}
			switch o.format {
			case formatEnv, formatJSON, formatYAML:
			default:
				return fmt.Errorf(`invalid --format %q: use "env", "json" or "yaml"`, o.format)
			}
			if cmd.Flags().Changed("output-dir") {
				if o.outputDir == "" {
					return fmt.Errorf("--output-dir needs a directory")
				}
				if cmd.Flags().Changed("format") {
					return fmt.Errorf("--format and --output-dir cannot be used together: --output-dir writes each value to a file of its own")
				}
			}
			return o.run(cmd.Context(), args[0])
		},
	}
	cmd.Flags().Int64Var(&o.revision, "revision", 0, "The kept revision whose entries to print; by default the ConfigSet's current entries.")
	cmd.Flags().StringVar(&o.format, "format", formatEnv, `How to print the entries: "env", "json" or "yaml".`)
	cmd.Flags().BoolVar(&o.showSecrets, "show-secrets", false, "Include the secret entries; without it they are left out.")
	cmd.Flags().StringVar(&o.outputDir, "output-dir", "", "Write each entry to a file named after its key in this directory instead of printing them.")
	return cmd
}

// exportEntry is one entry to export.
type exportEntry struct {
	key    string
	value  []byte
	secret bool
}

func (o *exportOptions) run(ctx context.Context, name string) error {
	client, namespace, err := o.client()
	if err != nil {
		return err
	}
	cs, err := getConfigSet(ctx, client, namespace, name)
	if err != nil {
		return err
	}
	revision, data, secretData := cs.Status.CurrentRevision, cs.Spec.Data, cs.Spec.SecretData
	if o.revision != 0 {
		revisions, err := listRevisions(ctx, client, namespace, name)
		if err != nil {
			return err
		}
		r, err := findRevision(revisions, name, o.revision)
		if err != nil {
			return err
		}
		revision, data, secretData = r.Revision, r.Data, r.SecretData
	}
	source := fmt.Sprintf("configset/%s revision %d", name, revision)
	entries, leftOut := exportEntries(data, secretData, o.showSecrets)

	if o.outputDir != "" {
		if err := writeEntryFiles(o.outputDir, entries, source); err != nil {
			return err
		}
		fmt.Fprintf(o.streams.ErrOut, "Wrote %s to %q from %s.\n", countOf(len(entries), "file", "files"), o.outputDir, source)
	} else {
		var out []byte
		switch o.format {
		case formatEnv:
			out, err = envText(entries, source)
		case formatJSON:
			out, err = jsonText(entries, source)
		case formatYAML:
			out, err = yamlText(entries, source)
		}
		if err != nil {
			return err
		}
		if _, err := o.streams.Out.Write(out); err != nil {
			return fmt.Errorf("printing the entries: %w", err)
		}
	}
	if leftOut > 0 {
		them := "them"
		if leftOut == 1 {
			them = "it"
		}
		fmt.Fprintf(o.streams.ErrOut, "Left out %s of %s; --show-secrets includes %s.\n",
			countOf(leftOut, "secret entry", "secret entries"), source, them)
	}
	return nil
}

// exportEntries returns the entries sorted by key, data and secretData
// together, and how many secret entries it left out.
func exportEntries(data map[string]string, secretData map[string][]byte, showSecrets bool) ([]exportEntry, int) {
	entries := make([]exportEntry, 0, len(data)+len(secretData))
	for k, v := range data {
		entries = append(entries, exportEntry{key: k, value: []byte(v)})
	}
	leftOut := 0
	for k, v := range secretData {
		if !showSecrets {
			leftOut++
			continue
		}
		entries = append(entries, exportEntry{key: k, value: v, secret: true})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	return entries, leftOut
}

// envText renders the entries as lines KEY='value' that a POSIX shell reads
// back into variables holding exactly the values. It refuses keys that are
// not variable names, and values with a NUL byte, which no shell variable
// can hold, rather than print something that reads back differently.
func envText(entries []exportEntry, source string) ([]byte, error) {
	var badKeys, nulKeys []string
	for _, e := range entries {
		if !isShellName(e.key) {
			badKeys = append(badKeys, e.key)
		} else if bytes.IndexByte(e.value, 0) >= 0 {
			nulKeys = append(nulKeys, e.key)
		}
	}
	if len(badKeys) > 0 {
		return nil, fmt.Errorf("cannot print %s of %s as shell variables: a variable name has only letters, digits and '_' and does not start with a digit; use --format json, --format yaml or --output-dir",
			keyList(badKeys), source)
	}
	if len(nulKeys) > 0 {
		return nil, fmt.Errorf("cannot print %s of %s as shell variables: a value holds a NUL byte, which a shell variable cannot; use --output-dir",
			keyList(nulKeys), source)
	}
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(e.key)
		b.WriteByte('=')
		b.WriteString(shellQuote(string(e.value)))
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// isShellName tells whether s is a POSIX shell variable name.
func isShellName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// shellQuote quotes s for a POSIX shell. Nothing is special between single
// quotes, line breaks included; a single quote itself is written by closing
// the quotes, adding an escaped quote and opening them again.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// jsonText renders the entries as one JSON object, keys sorted.
func jsonText(entries []exportEntry, source string) ([]byte, error) {
	m, err := textEntries(entries, source, "JSON")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encoding the entries of %s as JSON: %w", source, err)
	}
	return b.Bytes(), nil
}

// yamlText renders the entries as one YAML mapping, keys sorted.
func yamlText(entries []exportEntry, source string) ([]byte, error) {
	m, err := textEntries(entries, source, "YAML")
	if err != nil {
		return nil, err
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the entries of %s as YAML: %w", source, err)
	}
	return out, nil
}

// textEntries maps keys to values for JSON and YAML, which hold text only: a
// value that is not UTF-8 would not read back as the same bytes.
func textEntries(entries []exportEntry, source, format string) (map[string]string, error) {
	m := make(map[string]string, len(entries))
	var binary []string
	for _, e := range entries {
		if !utf8.Valid(e.value) {
			binary = append(binary, e.key)
			continue
		}
		m[e.key] = string(e.value)
	}
	if len(binary) > 0 {
		return nil, fmt.Errorf("cannot print %s of %s as %s: a value is not UTF-8 text; use --output-dir", keyList(binary), source, format)
	}
	return m, nil
}

// writeEntryFiles writes each entry to the file dir/key. It checks every key
// before it writes anything, and replaces each file whole, through a new file
// renamed into place: the mode is then always the one intended even when the
// file was there before, and a symbolic link in its place is replaced, not
// followed.
func writeEntryFiles(dir string, entries []exportEntry, source string) error {
	var bad []string
	secrets := false
	for _, e := range entries {
		if e.key == "" || e.key == "." || e.key == ".." || strings.ContainsRune(e.key, '/') || strings.ContainsRune(e.key, filepath.Separator) {
			bad = append(bad, e.key)
		}
		secrets = secrets || e.secret
	}
	if len(bad) > 0 {
		return fmt.Errorf(`cannot write %s of %s to files: a file name cannot be empty, "." or "..", nor contain "/"`, keyList(bad), source)
	}
	dirMode := dataDirMode
	if secrets {
		dirMode = secretDirMode
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("making the output directory: %w", err)
	}
	for _, e := range entries {
		mode := dataFileMode
		if e.secret {
			mode = secretFileMode
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, e.key), e.value, mode); err != nil {
			return fmt.Errorf("writing key %q of %s: %w", e.key, source, err)
		}
	}
	return nil
}

// keyList names keys for an error: `key "a"` or `keys "a", "b"`.
func keyList(keys []string) string {
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = strconv.Quote(k)
	}
	if len(keys) == 1 {
		return "key " + quoted[0]
	}
	return "keys " + strings.Join(quoted, ", ")
}

// countOf writes n with the singular or plural noun: "1 file", "2 files".
func countOf(n int, singular, plural string) string {
	if n == 1 {
		return "1 " + singular
	}
	return fmt.Sprintf("%d %s", n, plural)
}
