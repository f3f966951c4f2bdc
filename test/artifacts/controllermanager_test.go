package artifacts

import (
	"io"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	cmapp "capstan.dev/capstan/cmd/controller-manager/app"
)

// TestControllerManagerDeployment: the controller manager runs from the
// apiserver's image with arguments its own flags accept, as a leader-elected
// pair under the restricted Pod Security Standard, with a PDB and its own
// service account bound to its ClusterRole.
func TestControllerManagerDeployment(t *testing.T) {
	_, objs := render(t, deployDir)
	d := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-controller-manager"))
	api := typed[appsv1.Deployment](t, one(t, objs, "Deployment", "capstan-apiserver"))
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != api.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("image %q, want the apiserver's %q (one image holds both binaries)", c.Image, api.Spec.Template.Spec.Containers[0].Image)
	}
	if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/capstan-controller-manager" {
		t.Errorf("command %q, want the binary the Dockerfile installs", c.Command)
	}
	o := parsedControllerManagerArgs(t, c.Args)
	if !o.LeaderElection.LeaderElect {
		t.Error("two replicas without leader election would both write")
	}
	if len(c.Ports) != 1 || int(c.Ports[0].ContainerPort) != o.SecureServing.BindPort {
		t.Errorf("ports %+v, want the --secure-port %d", c.Ports, o.SecureServing.BindPort)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want /healthz (it carries the leader election watchdog)", c.LivenessProbe)
	}
	checkPodSecurity(t, pod, c)

	pdb := typed[policyv1.PodDisruptionBudget](t, one(t, objs, "PodDisruptionBudget", "capstan-controller-manager"))
	checkSelects(t, "PodDisruptionBudget capstan-controller-manager", pdb.Spec.Selector, d.Spec.Template.Labels)

	one(t, objs, "ServiceAccount", pod.ServiceAccountName)
	binding := typed[rbacv1.ClusterRoleBinding](t, one(t, objs, "ClusterRoleBinding", "capstan:controller-manager"))
	if len(binding.Subjects) != 1 || binding.Subjects[0].Name != pod.ServiceAccountName || binding.Subjects[0].Namespace != namespace {
		t.Errorf("ClusterRoleBinding subjects %+v, want the service account %s/%s", binding.Subjects, namespace, pod.ServiceAccountName)
	}
	role := typed[rbacv1.ClusterRole](t, one(t, objs, "ClusterRole", binding.RoleRef.Name))
	// What the controller does, and nothing it does not: it never patches,
	// never deletes workloads, never writes ConfigSets' spec.
	for _, want := range []struct{ group, resource, verb string }{
		{"config.capstan.dev", "configsets", "watch"},
		{"config.capstan.dev", "configsets/status", "update"},
		{"config.capstan.dev", "configrevisions", "get"},
		{"", "secrets", "create"},
		{"", "configmaps", "delete"},
		{"apps", "deployments", "update"},
		{"apps", "controllerrevisions", "list"},
	} {
		if !allows(role.Rules, want.group, want.resource, want.verb) {
			t.Errorf("ClusterRole %s does not allow %s %s.%s", role.Name, want.verb, want.resource, want.group)
		}
	}
	for _, deny := range []struct{ group, resource, verb string }{
		{"config.capstan.dev", "configsets", "update"},
		{"apps", "deployments", "delete"},
		{"apps", "deployments", "patch"},
		{"", "pods", "delete"},
		{"", "secrets", "patch"},
	} {
		if allows(role.Rules, deny.group, deny.resource, deny.verb) {
			t.Errorf("ClusterRole %s allows %s %s.%s, which the controller never does", role.Name, deny.verb, deny.resource, deny.group)
		}
	}
}

// parsedControllerManagerArgs are the Deployment's arguments parsed by
// capstan-controller-manager's own flags.
func parsedControllerManagerArgs(t *testing.T, args []string) *cmapp.Options {
	t.Helper()
	o := cmapp.NewOptions()
	fs := pflag.NewFlagSet("capstan-controller-manager", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range o.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("capstan-controller-manager does not accept the Deployment's arguments: %v", err)
	}
	return o
}
