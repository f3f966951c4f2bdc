// Command capstan-controller-manager runs the controllers that bring
// ConfigSets to workloads: it projects them into ConfigMaps and Secrets and
// rolls the Deployments, StatefulSets and DaemonSets that consume them. It
// talks to kube-apiserver only, and to Capstan through the aggregation layer.
package main

import (
	"os"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/cli"

	"capstan.dev/capstan/cmd/controller-manager/app"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	os.Exit(cli.Run(app.NewCommand(ctx)))
}
