// Command local-cluster starts, stops and reports on a local control plane for
// Capstan: etcd, kube-apiserver with the aggregation layer, and Capstan in
// aggregated mode with its own TLS etcd, all on 127.0.0.1 (see package
// capstan.dev/capstan/test/utils/controlplane). hack/local-cluster.sh builds the
// binaries and runs it.
//
//	local-cluster [--work-dir DIR] [--root DIR] up|down|status
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"capstan.dev/capstan/test/utils/controlplane"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "local-cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", ".", "the Capstan checkout: binaries are taken from its bin/ and _output/bin/")
	workDir := flag.String("work-dir", "", "the cluster's work folder (default ROOT/.cluster)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] up|down|status\n", filepath.Base(os.Args[0]))
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		return errors.New("one command expected")
	}
	if *workDir == "" {
		*workDir = filepath.Join(*root, ".cluster")
	}
	dir, err := filepath.Abs(*workDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch flag.Arg(0) {
	case "up":
		return up(ctx, *root, dir)
	case "down":
		return down(dir)
	case "status":
		return status(ctx, dir)
	default:
		flag.Usage()
		return fmt.Errorf("unknown command %q", flag.Arg(0))
	}
}

func up(ctx context.Context, root, dir string) error {
	if c, err := controlplane.Load(dir); err == nil {
		s := c.Status(ctx)
		for _, p := range s.Processes {
			if p.Running {
				s.Print(os.Stdout)
				return fmt.Errorf("a cluster already runs in %s; run `hack/local-cluster.sh down` first", dir)
			}
		}
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	start := time.Now()
	opts := controlplane.RepoOptions(root, dir)
	opts.Detach = true
	opts.Progress = os.Stdout
	c, err := controlplane.Up(ctx, opts)
	if err != nil {
		return err
	}
	kubeconfig := c.AdminKubeconfig
	// Below the current folder, a relative path is shorter to copy.
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, kubeconfig); err == nil && !strings.HasPrefix(rel, "..") {
			kubeconfig = rel
		}
	}
	fmt.Printf("\nCluster up in %.1fs.\n", time.Since(start).Seconds())
	fmt.Printf("  kube-apiserver:   %s\n", c.KubeAPIServerURL)
	fmt.Printf("  capstan (direct): %s\n", c.CapstanURL)
	fmt.Printf("  logs:             %s\n", filepath.Join(c.WorkDir, "logs"))
	fmt.Printf("  admin kubeconfig: %s\n\n", kubeconfig)
	fmt.Printf("Try:\n  kubectl --kubeconfig %s get configsets -A\n", kubeconfig)
	fmt.Printf("Stop it with:\n  hack/local-cluster.sh down\n")
	return nil
}

func down(dir string) error {
	c, err := controlplane.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Printf("no cluster recorded in %s\n", dir)
		return nil
	}
	if err != nil {
		return err
	}
	n := 0
	// Down stops the newest first.
	for i := len(c.Processes) - 1; i >= 0; i-- {
		if p := c.Processes[i]; p.Running() {
			fmt.Printf("stopping %s (pid %d)\n", p.Name, p.PID)
			n++
		}
	}
	if err := c.Down(); err != nil {
		return err
	}
	fmt.Printf("stopped %d processes; the work folder %s is kept (logs, certificates) until the next up\n", n, dir)
	return nil
}

func status(ctx context.Context, dir string) error {
	c, err := controlplane.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no cluster recorded in %s", dir)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	s := c.Status(ctx)
	s.Print(os.Stdout)
	if len(s.Processes) > 0 {
		fmt.Printf("kube-apiserver %s, capstan %s, admin kubeconfig %s\n", c.KubeAPIServerURL, c.CapstanURL, c.AdminKubeconfig)
	}
	if !s.Healthy() {
		return errors.New("the cluster is not healthy")
	}
	return nil
}
