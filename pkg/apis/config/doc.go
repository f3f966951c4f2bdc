// +k8s:deepcopy-gen=package
// +groupName=config.capstan.dev

// Package config is the internal (hub) version of the config.capstan.dev API.
// Every served version converts to and from these types; the registry works on
// them only.
package config
