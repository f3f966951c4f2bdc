package config

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ConfigSetLabelValue returns the value of the config.capstan.dev/configset label for a
// ConfigSet name: the name itself when it is a valid label value, otherwise a
// truncated name with a hash, since label values are limited to 63 characters.
func ConfigSetLabelValue(configSet string) string {
	if len(validation.IsValidLabelValue(configSet)) == 0 {
		return configSet
	}
	sum := sha256.Sum256([]byte(configSet))
	hash := hex.EncodeToString(sum[:])[:10]
	keep := validation.LabelValueMaxLength - len(hash) - 1
	prefix := configSet[:keep]
	// A label value must end with an alphanumeric character.
	for len(prefix) > 0 && !isAlphanumeric(prefix[len(prefix)-1]) {
		prefix = prefix[:len(prefix)-1]
	}
	return prefix + "-" + hash
}

func isAlphanumeric(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

// RevisionName returns the name of revision rev of the ConfigSet named configSet.
// It is deterministic so that writers in several replicas, and the reconciler,
// agree on it and a second write of the same revision is an AlreadyExists.
func RevisionName(configSet string, rev int64) string {
	suffix := "-" + strconv.FormatInt(rev, 10)
	if len(configSet)+len(suffix) <= validation.DNS1123SubdomainMaxLength {
		return configSet + suffix
	}
	// Keep the name unique for long ConfigSet names: truncate and add a hash of the full name.
	sum := sha256.Sum256([]byte(configSet))
	hash := "-" + hex.EncodeToString(sum[:])[:10]
	keep := validation.DNS1123SubdomainMaxLength - len(suffix) - len(hash)
	return configSet[:keep] + hash + suffix
}
