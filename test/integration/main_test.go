// Package integration runs Capstan in-process, in local mode with its own
// embedded etcd, and exercises it the way users and tools do: raw HTTP, the
// generated clientset, and kubectl. Each test function starts one server and
// shares it between its subtests, because a server takes seconds to start.
package integration
