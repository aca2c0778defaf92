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
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
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
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	b.untaint(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if b.untaint(ctx) {
				// pods refused for the taint get another chance, as the scheduler retries
				go func() {
					for _, obj := range inf.GetStore().List() {
						enqueue(obj)
					}
				}()
			}
		case p := <-b.queue:
			b.bind(ctx, p)
		}
	}
}

// untaint removes the node.kubernetes.io/not-ready taint that admission puts on a new Node once
// the node is Ready: the node lifecycle controller's job, when it does not run. A node may not
// change its own taints (NodeRestriction), so this uses the binder's credential.
func (b *binder) untaint(ctx context.Context) bool {
	node, err := b.cs.CoreV1().Nodes().Get(ctx, b.a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return false
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
			ready = true
		}
	}
	var keep []v1.Taint
	found := false
	for _, t := range node.Spec.Taints {
		if t.Key == v1.TaintNodeNotReady && t.Effect == v1.TaintEffectNoSchedule {
			found = true
			continue
		}
		keep = append(keep, t)
	}
	if !ready || !found {
		return false
	}
	node.Spec.Taints = keep
	if _, err := b.cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		klog.V(1).InfoS("removing the not-ready taint", "err", err)
		return false
	}
	return true
}

func (b *binder) bind(ctx context.Context, p *v1.Pod) {
	if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
		return
	}
	if p.Spec.SchedulerName != "" && p.Spec.SchedulerName != v1.DefaultSchedulerName {
		return
	}
	if len(p.Spec.SchedulingGates) > 0 {
		return // the scheduler waits for the gates to be removed
	}
	if msg := b.unfit(ctx, p); msg != "" {
		b.recorder.Eventf(p, v1.EventTypeWarning, "FailedScheduling", "%s", msg)
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

// unfit is the scheduler's FailedScheduling message when the pod cannot go to this node
// (node selector, required node affinity, untolerated NoSchedule/NoExecute taints).
func (b *binder) unfit(ctx context.Context, p *v1.Pod) string {
	node, err := b.a.cs.CoreV1().Nodes().Get(ctx, b.a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	const tail = " preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(p).Match(node); !ok {
		return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." + tail
	}
	taint, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, p.Spec.Tolerations, func(t *v1.Taint) bool {
		return t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute
	}, false)
	if untolerated {
		return fmt.Sprintf("0/1 nodes are available: 1 node(s) had untolerated taint {%s: %s}.", taint.Key, taint.Value) + tail
	}
	return ""
}

func (b *binder) String() string { return fmt.Sprintf("binder(%s)", b.a.cfg.NodeName) }
