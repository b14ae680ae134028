package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/drover/drover/internal/auth"
	"github.com/drover/drover/internal/controlplane"
)

// kubeconfigOptions are the flags of drover kubeconfig.
type kubeconfigOptions struct {
	dataDir, user, server, out   string
	groups                       []string
	clusterRole, role, namespace string
}

func newKubeconfigCommand() *cobra.Command {
	var o kubeconfigOptions
	cmd := &cobra.Command{
		Use:   "kubeconfig --user NAME",
		Short: "Mint a kubeconfig for a new user, optionally bound to a role",
		Long: `Mint a kubeconfig for a user: a client certificate for NAME (in the groups
given by --group), signed by the cluster's CA, so it must run on a server
machine (it reads DATA_DIR/pki). With --clusterrole (or --role) it also binds
the user to that role, as the admin: cluster-wide with a ClusterRoleBinding,
or in --namespace with a RoleBinding. The file is written with mode 0600.

  drover kubeconfig --user jane --clusterrole view --namespace team -o jane.kubeconfig
  drover kubectl --kubeconfig jane.kubeconfig auth can-i list pods -n team`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return mintKubeconfig(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "the server's data directory (its pki and admin kubeconfig)")
	f.StringVar(&o.user, "user", "", "the user's name (the certificate's common name)")
	f.StringSliceVar(&o.groups, "group", nil, "a group the user is in (repeatable)")
	f.StringVar(&o.clusterRole, "clusterrole", "", "bind the user to this ClusterRole (in --namespace if given, else cluster-wide)")
	f.StringVar(&o.role, "role", "", "bind the user to this Role of --namespace")
	f.StringVarP(&o.namespace, "namespace", "n", "", "the namespace of the binding, and the kubeconfig's default namespace")
	f.StringVar(&o.server, "server", "", "the API server URL to put in the kubeconfig (default: the admin kubeconfig's)")
	f.StringVarP(&o.out, "output", "o", "", `where to write the kubeconfig (default NAME.kubeconfig; "-" for stdout)`)
	_ = cmd.MarkFlagRequired("user")
	return cmd
}

func mintKubeconfig(ctx context.Context, o kubeconfigOptions, stdout io.Writer) error {
	if o.role != "" && o.namespace == "" {
		return errors.New("--role needs --namespace")
	}
	if o.role != "" && o.clusterRole != "" {
		return errors.New("give --role or --clusterrole, not both")
	}
	pki := filepath.Join(o.dataDir, controlplane.PKIDir)
	if _, err := os.Stat(filepath.Join(pki, auth.CAKeyFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no cluster CA key in %s: run this on a server machine, with its --data-dir", pki)
		}
		return err
	}
	ca, err := auth.EnsureCA(pki)
	if err != nil {
		return err
	}
	adminPath := filepath.Join(o.dataDir, controlplane.KubeconfigFile)
	admin, err := clientcmd.BuildConfigFromFlags("", adminPath)
	if err != nil {
		return fmt.Errorf("admin kubeconfig %s: %w", adminPath, err)
	}
	if o.server == "" {
		o.server = admin.Host
	}
	certPEM, keyPEM, err := ca.IssueClientCert(o.user, o.groups)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[auth.KubeconfigName] = &clientcmdapi.Cluster{Server: o.server, CertificateAuthorityData: ca.CertPEM()}
	cfg.AuthInfos[o.user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[auth.KubeconfigName] = &clientcmdapi.Context{Cluster: auth.KubeconfigName, AuthInfo: o.user, Namespace: o.namespace}
	cfg.CurrentContext = auth.KubeconfigName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encode kubeconfig: %w", err)
	}

	if o.clusterRole != "" || o.role != "" {
		client, err := kubernetes.NewForConfig(admin)
		if err != nil {
			return err
		}
		what, err := bindUser(ctx, client, o)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s\n", what)
	}

	switch out := o.out; out {
	case "-":
		_, err = stdout.Write(data)
		return err
	case "":
		o.out = o.user + ".kubeconfig"
	}
	if err := os.WriteFile(o.out, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := os.Chmod(o.out, 0o600); err != nil { // WriteFile keeps an existing file's mode
		return err
	}
	fmt.Fprintf(stdout, "kubeconfig for user %q written to %s\n", o.user, o.out)
	return nil
}

// bindUser creates the binding that grants the user its role; an existing
// binding of the same name is left alone.
func bindUser(ctx context.Context, client kubernetes.Interface, o kubeconfigOptions) (string, error) {
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: o.user}}
	kind, role := "ClusterRole", o.clusterRole
	if o.role != "" {
		kind, role = "Role", o.role
	}
	name := o.user + "-" + role
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}
	var err error
	var what string
	if o.namespace == "" {
		_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref, Subjects: subject}, metav1.CreateOptions{})
		what = fmt.Sprintf("clusterrolebinding %s: %s %s to user %s", name, kind, role, o.user)
	} else {
		_, err = client.RbacV1().RoleBindings(o.namespace).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name}, RoleRef: ref, Subjects: subject}, metav1.CreateOptions{})
		what = fmt.Sprintf("rolebinding %s/%s: %s %s to user %s", o.namespace, name, kind, role, o.user)
	}
	switch {
	case apierrors.IsAlreadyExists(err):
		return what + " (already there)", nil
	case err != nil:
		return "", fmt.Errorf("bind %s: %w", o.user, err)
	}
	return what + " created", nil
}
