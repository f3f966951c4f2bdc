// Command capstan-apiserver serves config.capstan.dev: versioned configuration
// for Kubernetes, locally with an embedded etcd or aggregated into a cluster.
package main

import (
	"os"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"

	"capstan.dev/capstan/cmd/apiserver/app"
)

func main() {
	app.SetGCPercent()
	ctx := genericapiserver.SetupSignalContext()
	os.Exit(cli.Run(app.NewCommand(ctx)))
}
