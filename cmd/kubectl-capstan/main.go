// Command kubectl-capstan is the kubectl plugin for Capstan: with it on PATH,
// `kubectl capstan history|diff|rollback` show, compare and roll back the
// revisions of ConfigSets, `kubectl capstan export` prints a revision's
// entries for consumers outside Kubernetes, and `kubectl capstan rollout
// status` shows which revision each consuming workload runs.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"capstan.dev/capstan/cmd/kubectl-capstan/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
