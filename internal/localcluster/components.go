package localcluster

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Command lines of the components. Everything listens on 127.0.0.1 only.

func loopbackURL(scheme string, port int) string {
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
}

func etcdArgs(cfg Config) []string {
	client, peer := loopbackURL("http", cfg.EtcdClientPort), loopbackURL("http", cfg.EtcdPeerPort)
	return []string{
		"--name=opgate",
		"--data-dir=" + cfg.etcdDataDir(),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=opgate=" + peer,
		"--initial-cluster-state=new",
		"--log-level=warn",
	}
}

func apiServerArgs(cfg Config, p *pki) []string {
	return append([]string{
		"--etcd-servers=" + loopbackURL("http", cfg.EtcdClientPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(cfg.APIServerPort),
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--client-ca-file=" + p.caCert,
		"--token-auth-file=" + p.tokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + serviceClusterIPRange,
		// The kubernetes Service gets no endpoints: 127.0.0.1 is not a valid
		// endpoint address, and nothing in the cluster could reach it anyway.
		"--endpoint-reconciler-type=none",
		// Request-header authentication, for aggregated API servers and for
		// the delegated authentication of the controller-manager and the
		// scheduler.
		"--requestheader-client-ca-file=" + p.caCert,
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p.proxyClientCert,
		"--proxy-client-key-file=" + p.proxyClientKey,
		"--allow-privileged=true",
		"--profiling=false",
	}, cfg.APIServerFlags...)
}

// componentServingArgs are the shared flags of the controller-manager and
// the scheduler: their kubeconfig (also for delegated authn/authz of their
// own HTTPS endpoint), and that endpoint on a loopback port with our
// certificate.
func componentServingArgs(cfg Config, p *pki, name string, port int) []string {
	kubeconfig := componentKubeconfigPath(cfg.DataDir, name)
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--leader-elect=false",
	}
}

func controllerManagerArgs(cfg Config, p *pki) []string {
	args := append(componentServingArgs(cfg, p, "kube-controller-manager", cfg.ControllerManagerPort),
		"--controllers="+strings.Join(cfg.Controllers, ","),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p.saKey,
		"--root-ca-file="+p.caCert,
		"--cluster-signing-cert-file="+p.caCert,
		"--cluster-signing-key-file="+p.caKey,
		"--service-cluster-ip-range="+serviceClusterIPRange,
	)
	return append(args, cfg.ControllerManagerFlags...)
}

func schedulerArgs(cfg Config, p *pki) []string {
	return componentServingArgs(cfg, p, "kube-scheduler", cfg.SchedulerPort)
}

// kwokArgs makes kwok play the kubelet of the nodes annotated
// kwok.x-k8s.io/node=fake (see nodes.go) and of their pods.
func kwokArgs(cfg Config) []string {
	return []string{
		"--kubeconfig=" + componentKubeconfigPath(cfg.DataDir, "kwok"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--node-lease-duration-seconds=20", // renewed every 5s
		"--cidr=" + podCIDR,
	}
}

func componentKubeconfigPath(dataDir, name string) string {
	return filepath.Join(dataDir, "pki", name+".kubeconfig")
}
