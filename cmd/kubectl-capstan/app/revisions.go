package app

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"capstan.dev/capstan/pkg/apis/config"
	"capstan.dev/capstan/pkg/apis/config/v1beta1"
	"capstan.dev/capstan/pkg/generated/clientset/versioned"
)

// listPageSize bounds one list call; a ConfigSet keeps at most 1000 revisions.
const listPageSize = 250

// getConfigSet gets a ConfigSet, with an error that names what is missing.
func getConfigSet(ctx context.Context, client versioned.Interface, namespace, name string) (*v1beta1.ConfigSet, error) {
	cs, err := client.ConfigV1beta1().ConfigSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("configset %q not found in namespace %q", name, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("getting configset %q in namespace %q: %w", name, namespace, err)
	}
	return cs, nil
}

// listRevisions returns the kept revisions of a ConfigSet, oldest first. It
// selects them by the configSetName field rather than by name, because the
// server shortens the names of revisions of long-named ConfigSets, and it
// checks the field again in case a server or a fake ignores the selector.
func listRevisions(ctx context.Context, client versioned.Interface, namespace, name string) ([]v1beta1.ConfigRevision, error) {
	opts := metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector(config.ConfigRevisionConfigSetNameField, name).String(),
		Limit:         listPageSize,
	}
	var revisions []v1beta1.ConfigRevision
	for {
		list, err := client.ConfigV1beta1().ConfigRevisions(namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing the revisions of configset %q in namespace %q: %w", name, namespace, err)
		}
		for _, r := range list.Items {
			if r.ConfigSetName == name {
				revisions = append(revisions, r)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	sort.SliceStable(revisions, func(i, j int) bool { return revisions[i].Revision < revisions[j].Revision })
	return revisions, nil
}

// findRevision returns revision n from revisions, or an error listing the
// kept ones.
func findRevision(revisions []v1beta1.ConfigRevision, name string, n int64) (*v1beta1.ConfigRevision, error) {
	for i := range revisions {
		if revisions[i].Revision == n {
			return &revisions[i], nil
		}
	}
	return nil, notKeptError(name, n, revisions)
}

// notKeptError says that revision n is gone and which revisions are kept.
func notKeptError(name string, n int64, revisions []v1beta1.ConfigRevision) error {
	if len(revisions) == 0 {
		return fmt.Errorf("revision %d of configset/%s is not kept: no revisions are kept", n, name)
	}
	numbers := make([]int64, len(revisions))
	for i, r := range revisions {
		numbers[i] = r.Revision
	}
	return fmt.Errorf("revision %d of configset/%s is not kept (kept revisions: %s)", n, name, formatRevisionNumbers(numbers))
}

// formatRevisionNumbers writes sorted revision numbers with runs shortened to
// ranges: "1, 3-7, 9".
func formatRevisionNumbers(numbers []int64) string {
	var parts []string
	for i := 0; i < len(numbers); {
		j := i
		for j+1 < len(numbers) && numbers[j+1] == numbers[j]+1 {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, strconv.FormatInt(numbers[i], 10))
		default:
			parts = append(parts, fmt.Sprintf("%d-%d", numbers[i], numbers[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// parseRevision parses a revision number given on the command line.
func parseRevision(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("invalid revision %q: a revision is a whole number of at least 1", s)
	}
	return n, nil
}
