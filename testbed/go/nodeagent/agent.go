// Package nodeagent is the test bed's "process kubelet": it registers a Node with a real
// kube-apiserver, runs the pods bound to it as local processes (each container in its own PID
// and mount namespaces, its program PID 1 there), gives them their volumes, environment and
// service-account tokens, reports their status as a kubelet does, and serves the kubelet API
// (container logs, exec) that kube-apiserver calls. See testbed/README.md.
package nodeagent

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// Config is the agent's command line.
type Config struct {
	Kubeconfig       string
	BinderKubeconfig string
	NodeName         string
	Root             string
	Images           string
	Port             int
	TLSCert          string
	TLSKey           string
	ClientCA         string
	APIServerHost    string
	APIServerPort    int
	NodeIP           string
}

// Agent is a running node agent.
type Agent struct {
	cfg      Config
	ctx      context.Context
	cs       kubernetes.Interface
	recorder record.EventRecorder
	images   *ImageMap
	vols     *volumeManager
	self     string
	nodeUID  types.UID

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	runs    map[string]runRef // containerID → run
}

type runRef struct {
	r *run
	w *podWorker
	c *ctrState
}

// Main is `testbed node-agent ...`; `testbed node-agent container-init SPEC` is the first
// process of a container.
func Main(args []string) int {
	if len(args) == 2 && args[0] == "container-init" {
		return containerInit(args[1])
	}
	var cfg Config
	fs := flag.NewFlagSet("node-agent", flag.ContinueOnError)
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the node identity (system:node:NAME)")
	fs.StringVar(&cfg.BinderKubeconfig, "binder-kubeconfig", "", "kubeconfig allowed to bind pods (the agent schedules unscheduled pods to itself); empty: try the node identity")
	fs.StringVar(&cfg.NodeName, "node-name", "", "name of the Node")
	fs.StringVar(&cfg.Root, "root", "", "directory for pods' volumes, containers and logs")
	fs.StringVar(&cfg.Images, "images", "", "image map (YAML)")
	fs.IntVar(&cfg.Port, "port", 10250, "port of the kubelet HTTPS API")
	fs.StringVar(&cfg.TLSCert, "tls-cert-file", "", "serving certificate")
	fs.StringVar(&cfg.TLSKey, "tls-private-key-file", "", "serving key")
	fs.StringVar(&cfg.ClientCA, "client-ca-file", "", "CA of the clients (kube-apiserver) allowed to call the API")
	fs.StringVar(&cfg.APIServerHost, "apiserver-host", "127.0.0.1", "KUBERNETES_SERVICE_HOST given to containers")
	fs.IntVar(&cfg.APIServerPort, "apiserver-port", 6443, "KUBERNETES_SERVICE_PORT given to containers")
	fs.StringVar(&cfg.NodeIP, "node-ip", "127.0.0.1", "the node's InternalIP (also every pod's IP)")
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.Func("v", "log verbosity", func(s string) error { return klogFlags.Set("v", s) })
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for name, v := range map[string]string{"kubeconfig": cfg.Kubeconfig, "node-name": cfg.NodeName, "root": cfg.Root, "images": cfg.Images} {
		if v == "" {
			fmt.Fprintf(os.Stderr, "node-agent: --%s is required\n", name)
			return 2
		}
	}
	if err := runAgent(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "node-agent:", err)
		return 1
	}
	return 0
}

func clientFor(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "kubelet/" + KubeletVersion + " (node-agent)"
	rc.QPS, rc.Burst = 50, 100
	return kubernetes.NewForConfig(rc)
}

func runAgent(cfg Config) error {
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return err
	}
	cfg.Root = root
	if err := os.MkdirAll(filepath.Join(root, "pods"), 0o755); err != nil {
		return err
	}
	images, err := LoadImageMap(cfg.Images)
	if err != nil {
		return err
	}
	cs, err := clientFor(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a := &Agent{cfg: cfg, ctx: ctx, cs: cs, images: images, self: self,
		workers: map[types.UID]*podWorker{}, runs: map[string]runRef{}}
	a.vols = &volumeManager{a: a, tokens: map[string]cachedToken{}}
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	defer bc.Shutdown()
	a.recorder = bc.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.NodeName})

	if err := a.registerNode(ctx); err != nil {
		return fmt.Errorf("registering node %s: %v", cfg.NodeName, err)
	}
	go a.heartbeat(ctx)
	srvErr, err := a.serve(ctx)
	if err != nil {
		return err
	}
	a.watchPods(ctx)
	// kube-scheduler binds pods (the launcher runs the real one); the agent's own binder is only
	// for a control plane without a scheduler, and only with a credential allowed to bind.
	if cfg.BinderKubeconfig != "" {
		bcs, err := clientFor(cfg.BinderKubeconfig)
		if err != nil {
			return err
		}
		sbc := record.NewBroadcaster(record.WithContext(ctx))
		sbc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: bcs.CoreV1().Events("")})
		defer sbc.Shutdown()
		b := &binder{a: a, cs: bcs, queue: make(chan *v1.Pod, 1000),
			recorder: sbc.NewRecorder(scheme.Scheme, v1.EventSource{Component: "default-scheduler"})}
		go b.run(ctx)
	}
	fmt.Println("node-agent ready")
	select {
	case <-ctx.Done():
	case err := <-srvErr:
		klog.ErrorS(err, "kubelet API server stopped")
	}
	klog.InfoS("stopping: killing every container")
	a.stopAll()
	return nil
}

// watchPods follows the pods bound to this node and gives each its worker.
func (a *Agent) watchPods(ctx context.Context) {
	f := informers.NewSharedInformerFactoryWithOptions(a.cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()
	}))
	inf := f.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { a.podChanged(obj.(*v1.Pod)) },
		UpdateFunc: func(_, obj interface{}) { a.podChanged(obj.(*v1.Pod)) },
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*v1.Pod); ok {
				a.podGone(p)
			}
		},
	})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
}

func (a *Agent) podChanged(p *v1.Pod) {
	a.mu.Lock()
	w, ok := a.workers[p.UID]
	if !ok {
		w = newPodWorker(a, p)
		a.workers[p.UID] = w
		a.mu.Unlock()
		go func() {
			w.loop()
			a.mu.Lock()
			if a.workers[p.UID] == w {
				delete(a.workers, p.UID)
			}
			a.mu.Unlock()
		}()
		return
	}
	a.mu.Unlock()
	w.update(p)
}

func (a *Agent) podGone(p *v1.Pod) {
	a.mu.Lock()
	w, ok := a.workers[p.UID]
	a.mu.Unlock()
	if ok {
		w.remove()
	}
}

// stopAll stops every container of every pod (on SIGTERM): no process is left behind.
func (a *Agent) stopAll() {
	a.mu.Lock()
	ws := make([]*podWorker, 0, len(a.workers))
	for _, w := range a.workers {
		ws = append(ws, w)
	}
	a.mu.Unlock()
	for _, w := range ws {
		select {
		case <-w.exited:
		case <-time.After(15 * time.Second):
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rr := range a.runs {
		if rr.r.Running() {
			rr.r.Signal(syscall.SIGKILL)
		}
	}
}

func (a *Agent) podDir(uid types.UID) string { return filepath.Join(a.cfg.Root, "pods", string(uid)) }

func (a *Agent) event(ref *v1.ObjectReference, typ, reason, msg string) {
	a.recorder.Event(ref, typ, reason, msg)
}

func (a *Agent) registerRun(r *run, w *podWorker, c *ctrState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.runs[r.ID] = runRef{r: r, w: w, c: c}
}

func (a *Agent) forgetRuns(w *podWorker) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, rr := range a.runs {
		if rr.w == w {
			delete(a.runs, id)
		}
	}
}
