// mooring-controlplane is the local Kubernetes control plane that mooring's tests,
// demo and `npm run cluster` run against. No kube-apiserver binary can be downloaded
// where mooring is developed, so this program builds one from the upstream Go
// modules: an embedded etcd, the real kube-apiserver (RBAC on, client-certificate
// authentication) and the namespace controller, all in one process on 127.0.0.1.
//
// There is no kubelet and no workload controller: a Deployment never becomes ready
// on its own. Tests that need one to be ready (or failed) patch its status.
//
// Usage:
//
//	mooring-controlplane serve --dir DIR [--exit-with-pid PID]
//	                                       run until SIGTERM (or until PID is gone);
//	                                       writes DIR/admin.kubeconfig, then DIR/state.json
//	                                       once the API server is ready
//	mooring-controlplane mint  --dir DIR --user NAME [--group G ...] --out FILE
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	_ "unsafe" // for go:linkname, see kubeVersion

	"go.etcd.io/etcd/server/v3/embed"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	namespacecontroller "k8s.io/kubernetes/pkg/controller/namespace"

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
)

// The API server reports its version from these variables, which release builds set
// with -ldflags -X. A plain `go build` leaves "v0.0.0-master", which kubectl cannot
// parse and Helm charts that compare .Capabilities.KubeVersion misread, so main fills
// them from the module version of k8s.io/kubernetes this binary was built from.
//
//go:linkname gitVersion k8s.io/component-base/version.gitVersion
var gitVersion string

//go:linkname gitMajor k8s.io/component-base/version.gitMajor
var gitMajor string

//go:linkname gitMinor k8s.io/component-base/version.gitMinor
var gitMinor string

//go:linkname gitTreeState k8s.io/component-base/version.gitTreeState
var gitTreeState string

func setKubeVersion() {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	for _, dep := range info.Deps {
		if dep.Path != "k8s.io/kubernetes" {
			continue
		}
		parts := strings.SplitN(strings.TrimPrefix(dep.Version, "v"), ".", 3)
		if len(parts) < 2 {
			return
		}
		gitVersion, gitMajor, gitMinor, gitTreeState = dep.Version, parts[0], parts[1], "clean"
		// version.Get reads a copy taken at init; this replaces it (and checks the
		// version against gitVersion, which is why that is set first).
		if err := version.SetDynamicVersion(dep.Version); err != nil {
			fmt.Fprintln(os.Stderr, "mooring-controlplane: cannot set the reported version:", err)
		}
	}
}

func main() {
	setKubeVersion()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mooring-controlplane serve|mint --dir DIR ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "mint":
		err = mint(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want serve or mint)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mooring-controlplane:", err)
		os.Exit(1)
	}
}

// state is what `serve` leaves in DIR/state.json for the TypeScript side.
type state struct {
	PID        int    `json:"pid"`
	Server     string `json:"server"`
	EtcdURL    string `json:"etcdUrl"`
	Kubeconfig string `json:"kubeconfig"`
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (certificates, etcd data, kubeconfig)")
	exitWithPID := fs.Int("exit-with-pid", 0, "shut down when this process is gone (a test runner that crashed)")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("--dir is required")
	}
	root, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	pki := filepath.Join(root, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	ca, caKey, err := loadOrCreateCA(pki)
	if err != nil {
		return err
	}
	if err := writeServingCert(pki, ca, caKey); err != nil {
		return err
	}
	if err := writeServiceAccountKey(pki); err != nil {
		return err
	}

	// A soft ceiling on the Go heap (etcd and the API server share it), so that a long
	// test run makes the collector work harder instead of growing the process; idle use
	// is well below it. GOMEMLIMIT in the environment wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(384 << 20)
	}

	// The same ports as last time where they are still free, so that kubeconfigs handed
	// out before a restart (`npm run cluster -- down/up`, minted users) keep working.
	ports := loadPorts(filepath.Join(root, "ports.json"))
	if ports.Etcd, err = freePort(ports.Etcd); err != nil {
		return err
	}
	if ports.Peer, err = freePort(ports.Peer); err != nil {
		return err
	}
	if ports.API, err = freePort(ports.API); err != nil {
		return err
	}
	if data, err := json.Marshal(ports); err == nil {
		_ = os.WriteFile(filepath.Join(root, "ports.json"), data, 0o600)
	}
	etcdPort, peerPort, apiPort := ports.Etcd, ports.Peer, ports.API

	etcd, err := startEtcd(filepath.Join(root, "etcd"), etcdPort, peerPort)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	kubeconfig := filepath.Join(root, "admin.kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, pki, ca, caKey, "mooring-admin", []string{"system:masters"}); err != nil {
		return err
	}

	cmd := app.NewAPIServerCommand()
	cmd.SetArgs([]string{
		"--etcd-servers=" + fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file=" + filepath.Join(pki, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(pki, "apiserver.key"),
		"--client-ca-file=" + filepath.Join(pki, "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-priority-and-fairness=false",
		"--cert-dir=" + filepath.Join(root, "apiserver-certs"),
		// The only address is loopback, which the "kubernetes" Service's endpoints may not
		// hold; without this the reconciler logs an error every 10s. Nothing here needs
		// in-cluster access to the API through that Service.
		"--endpoint-reconciler-type=none",
		"--v=0",
	})

	// The namespace controller's watches are open requests that the API server waits up
	// to a minute for when it shuts down; stop the controller first so that SIGTERM ends
	// everything within a few seconds. cli.Run sees the same signal and shuts down.
	ctrlCtx, stopCtrl := context.WithCancel(context.Background())
	defer stopCtrl()
	stopping := make(chan os.Signal, 2)
	signal.Notify(stopping, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stopping
		stopCtrl()
		// A shutdown that hangs must still end: callers wait for this process to exit.
		time.Sleep(30 * time.Second)
		fmt.Fprintln(os.Stderr, "mooring-controlplane: shutdown took more than 30s, exiting")
		os.Exit(1)
	}()
	if *exitWithPID > 0 {
		go exitWith(*exitWithPID)
	}

	st := state{PID: os.Getpid(), Server: server, EtcdURL: fmt.Sprintf("http://127.0.0.1:%d", etcdPort), Kubeconfig: kubeconfig}
	go func() {
		if err := waitReady(server, pki); err != nil {
			fmt.Fprintln(os.Stderr, "mooring-controlplane: API server never became ready:", err)
			os.Exit(1)
		}
		if err := startNamespaceController(ctrlCtx, kubeconfig); err != nil {
			fmt.Fprintln(os.Stderr, "mooring-controlplane: namespace controller:", err)
			os.Exit(1)
		}
		data, _ := json.MarshalIndent(st, "", "  ")
		if err := os.WriteFile(filepath.Join(root, "state.json"), data, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "mooring-controlplane:", err)
			os.Exit(1)
		}
		fmt.Println("ready", server)
	}()

	// cli.Run wires klog and returns when the API server stops (on SIGTERM/SIGINT).
	code := cli.Run(cmd)
	_ = os.Remove(filepath.Join(root, "state.json"))
	if code != 0 {
		return fmt.Errorf("kube-apiserver exited with code %d", code)
	}
	return nil
}

func startEtcd(dataDir string, clientPort, peerPort int) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "mooring"
	cfg.Dir = dataDir
	clientURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", clientPort))
	peerURL, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	// A throwaway test cluster: durability is not worth the fsync latency.
	cfg.UnsafeNoFsync = true
	// Keep memory and disk small: a test cluster holds little, and the raft log kept in
	// memory between snapshots grows with the snapshot interval.
	cfg.QuotaBackendBytes = 512 << 20
	cfg.SnapshotCount = 5000
	cfg.SnapshotCatchUpEntries = 1000
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("etcd did not become ready within 60s")
	}
}

// exitWith sends this process SIGTERM once process pid is gone, so that a test run
// killed before its teardown does not leave a control plane behind.
func exitWith(pid int) {
	for {
		time.Sleep(time.Second)
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(os.Stderr, "mooring-controlplane: process %d is gone, shutting down\n", pid)
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			return
		}
	}
}

func startNamespaceController(ctx context.Context, kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS = 100
	cfg.Burst = 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	ctrl := namespacecontroller.NewNamespaceController(ctx, client, meta,
		client.Discovery().ServerPreferredNamespacedResources,
		factory.Core().V1().Namespaces(), 5*time.Minute, v1.FinalizerKubernetes)
	factory.Start(ctx.Done())
	go ctrl.Run(ctx, 2)
	return nil
}

func waitReady(server, pki string) error {
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("timed out after 3m")
}

func mint(args []string) error {
	fs := flag.NewFlagSet("mint", flag.ExitOnError)
	dir := fs.String("dir", "", "state directory of a running control plane")
	user := fs.String("user", "", "user name (certificate CN)")
	out := fs.String("out", "", "kubeconfig file to write")
	var groups multiFlag
	fs.Var(&groups, "group", "group (certificate O); repeatable")
	_ = fs.Parse(args)
	if *dir == "" || *user == "" || *out == "" {
		return errors.New("mint needs --dir, --user and --out")
	}
	pki := filepath.Join(*dir, "pki")
	ca, caKey, err := loadOrCreateCA(pki)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(*dir, "state.json"))
	if err != nil {
		return fmt.Errorf("control plane in %s is not running: %w", *dir, err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	return writeKubeconfig(*out, st.Server, "", ca, caKey, *user, groups)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type portSet struct {
	API  int `json:"api"`
	Etcd int `json:"etcd"`
	Peer int `json:"peer"`
}

func loadPorts(path string) portSet {
	var p portSet
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &p)
	}
	return p
}

// freePort returns preferred if it can be listened on, otherwise a free port chosen by
// the kernel.
func freePort(preferred int) (int, error) {
	if preferred > 0 {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", preferred)); err == nil {
			l.Close()
			return preferred, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func loadOrCreateCA(pki string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(pki, "ca.crt"), filepath.Join(pki, "ca.key")
	if certPEM, err := os.ReadFile(certPath); err == nil {
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, nil, err
		}
		cb, _ := pem.Decode(certPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			return nil, nil, fmt.Errorf("corrupt CA in %s", pki)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, nil, err
		}
		key, err := x509.ParseECPrivateKey(kb.Bytes)
		return cert, key, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mooring-local-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writePEM(certPath, "CERTIFICATE", der); err != nil {
		return nil, nil, err
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := writePEM(keyPath, "EC PRIVATE KEY", kder); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(5 * 365 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func writeServingCert(pki string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	if _, err := os.Stat(filepath.Join(pki, "apiserver.crt")); err == nil {
		return nil
	}
	certPEM, keyPEM, err := issue(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pki, "apiserver.crt"), certPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(pki, "apiserver.key"), keyPEM, 0o600)
}

func writeServiceAccountKey(pki string) error {
	path := filepath.Join(pki, "sa.key")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return writePEM(path, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
}

// writeKubeconfig issues a client certificate (CN=user, O=groups) and writes a
// kubeconfig with the certificate embedded. With pki set, the pair is also kept
// there as <user>.crt/.key (used for the admin's readiness probe).
func writeKubeconfig(path, server, pki string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, user string, groups []string) error {
	certPEM, keyPEM, err := issue(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	if pki != "" {
		name := "admin"
		if err := os.WriteFile(filepath.Join(pki, name+".crt"), certPEM, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(pki, name+".key"), keyPEM, 0o600); err != nil {
			return err
		}
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	b64 := base64.StdEncoding.EncodeToString
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: mooring-local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: %s
  context:
    cluster: mooring-local
    user: %s
current-context: %s
`, server, b64(caPEM), user, b64(certPEM), b64(keyPEM), contextName(user), user, contextName(user))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o600)
}

func contextName(user string) string {
	if user == "mooring-admin" {
		return "mooring-local"
	}
	return "mooring-local-" + user
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
