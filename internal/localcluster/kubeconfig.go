package localcluster

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const contextName = "opgate-local"

// writeKubeconfigs writes the admin kubeconfig (DataDir/kubeconfig) and one
// per component under DataDir/pki, each with the cluster's CA and its
// identity's token. They are rewritten on every start, since the port may
// have changed.
func writeKubeconfigs(cfg Config, p *pki) error {
	ca, err := os.ReadFile(p.caCert)
	if err != nil {
		return err
	}
	server := loopbackURL("https", cfg.APIServerPort)
	for _, id := range identities {
		path := componentKubeconfigPath(cfg.DataDir, id.name)
		if id.name == "admin" {
			path = KubeconfigPath(cfg.DataDir)
		}
		if err := clientcmd.WriteToFile(kubeconfig(server, ca, id.name, p.tokens[id.name]), path); err != nil {
			return fmt.Errorf("kubeconfig for %s: %w", id.name, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func kubeconfig(server string, ca []byte, user, token string) clientcmdapi.Config {
	return clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{contextName: {Server: server, CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{user: {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{contextName: {Cluster: contextName, AuthInfo: user}},
		CurrentContext: contextName,
	}
}

// RESTConfig is the admin *rest.Config of the cluster whose kubeconfig is
// at path, with QPS and burst high enough for tests.
func RESTConfig(kubeconfigPath string) (*rest.Config, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfigPath, err)
	}
	config.QPS, config.Burst = 50, 100
	return config, nil
}
