package nodeagent

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// binder stands in for kube-scheduler: it binds every unscheduled pod of the default scheduler
// to this node. The node's own identity may not bind pods (the system:node rules have no
// pods/binding) nor list pods of other nodes, so it uses the --binder-kubeconfig credential.
type binder struct {
	a        *Agent
	cs       kubernetes.Interface
	recorder record.EventRecorder
	queue    chan *v1.Pod
}

func (b *binder) run(ctx context.Context) {
	f := informers.NewSharedInformerFactoryWithOptions(b.cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.AndSelectors(fields.OneTermEqualSelector("spec.nodeName", ""),
			fields.OneTermNotEqualSelector("status.phase", string(v1.PodSucceeded)),
			fields.OneTermNotEqualSelector("status.phase", string(v1.PodFailed))).String()
	}))
	inf := f.Core().V1().Pods().Informer()
	enqueue := func(obj interface{}) {
		if p, ok := obj.(*v1.Pod); ok {
			select {
			case b.queue <- p:
			case <-ctx.Done():
			}
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, n interface{}) { enqueue(n) }})
	f.Start(ctx.Done())
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-b.queue:
			b.bind(ctx, p)
		}
	}
}

func (b *binder) bind(ctx context.Context, p *v1.Pod) {
	if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
		return
	}
	if p.Spec.SchedulerName != "" && p.Spec.SchedulerName != v1.DefaultSchedulerName {
		return
	}
	binding := &v1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
		Target: v1.ObjectReference{Kind: "Node", Name: b.a.cfg.NodeName}}
	for i := 0; i < 3; i++ {
		err := b.cs.CoreV1().Pods(p.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
		if err == nil {
			b.recorder.Eventf(p, v1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", p.Namespace, p.Name, b.a.cfg.NodeName)
			return
		}
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) {
			return
		}
		if apierrors.IsForbidden(err) {
			klog.ErrorS(err, "binding is forbidden: start the agent with --binder-kubeconfig (a credential that may create pods/binding and list pods), or run kube-scheduler", "pod", klog.KObj(p))
			return
		}
		klog.ErrorS(err, "binding pod", "pod", klog.KObj(p))
		time.Sleep(time.Second)
	}
}

func (b *binder) String() string { return fmt.Sprintf("binder(%s)", b.a.cfg.NodeName) }
