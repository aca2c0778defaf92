// Command sensorcheck prints the Workflow name the rendered tenant-lifecycle Sensor gives a
// request, computed by argo-events' own trigger code: the steps a running Sensor takes between
// receiving an event and submitting the Workflow (sensors/listener.go triggerOne), minus the
// submission itself.
//
// It reads JSON lines {"id": <CloudEvent id>} on stdin. For each it builds the event exactly as
// the Google Cloud Pub/Sub EventSource with jsonBody: true dispatches it (the request CloudEvent,
// parsed, under "body"), applies the trigger's template parameters, fetches the trigger's inline
// Workflow and applies its parameters with argo-events' argoWorkflow trigger, and prints
// {"name": <metadata.name>} -- or {"error": <why>} when argo-events refused the event -- one line
// per input line. tests/integration/test_sensor_naming.py compares the names with
// orchestrator.naming.workflow_name, so both submission paths provably agree.
//
// Usage: go run . -sensor ../../workflows/rendered/events/sensor.yaml < ids.jsonl
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/argoproj/argo-events/pkg/apis/events/v1alpha1"
	"github.com/argoproj/argo-events/pkg/eventsources/events"
	sensortriggers "github.com/argoproj/argo-events/pkg/sensors/triggers"
	argoworkflow "github.com/argoproj/argo-events/pkg/sensors/triggers/argo-workflow"
	"github.com/ghodss/yaml"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// withResource: print the submitted object too (-resource).
var withResource bool

// maxLine bounds one input line; ids in the tests are a few hundred bytes.
const maxLine = 1 << 20

type input struct {
	// Kept raw so the id reaches the event body exactly as the caller wrote it.
	ID json.RawMessage `json:"id"`
	// Optional: the whole request CloudEvent (its id must equal ID); default: a minimal one.
	Event json.RawMessage `json:"event,omitempty"`
}

type output struct {
	Name  *string `json:"name,omitempty"`
	Error string  `json:"error,omitempty"`
	// With -resource: the Workflow object the trigger would submit.
	Workflow map[string]any `json:"workflow,omitempty"`
}

func main() {
	sensorPath := flag.String("sensor", "", "the rendered Sensor manifest (workflows/rendered/events/sensor.yaml)")
	flag.BoolVar(&withResource, "resource", false, "also print the whole Workflow the trigger would submit")
	flag.Parse()
	if *sensorPath == "" {
		fmt.Fprintln(os.Stderr, "sensorcheck: -sensor PATH is required (the rendered Sensor manifest)")
		os.Exit(2)
	}
	// argo-events reports a failed parameter template with fmt.Printf (params.go) before falling
	// back: keep that diagnostic on stderr so stdout carries only our JSON lines.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	if err := run(*sensorPath, os.Stdin, stdout); err != nil {
		fmt.Fprintf(os.Stderr, "sensorcheck: %v\n", err)
		os.Exit(1)
	}
}

func run(sensorPath string, in io.Reader, out io.Writer) error {
	sensor, err := loadSensor(sensorPath)
	if err != nil {
		return err
	}
	if len(sensor.Spec.Dependencies) != 1 || len(sensor.Spec.Triggers) != 1 {
		return fmt.Errorf("%s: expected one dependency and one trigger, found %d and %d",
			sensorPath, len(sensor.Spec.Dependencies), len(sensor.Spec.Triggers))
	}
	trigger := sensor.Spec.Triggers[0]
	if trigger.Template == nil || trigger.Template.ArgoWorkflow == nil {
		return fmt.Errorf("%s: the trigger is not an argoWorkflow trigger", sensorPath)
	}
	dependency := sensor.Spec.Dependencies[0]

	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 0, 64*1024), maxLine)
	encoder := json.NewEncoder(out)
	encoder.SetEscapeHTML(false)
	for scanner.Scan() {
		var line input
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			return fmt.Errorf("stdin: not a JSON line {\"id\": ...}: %w", err)
		}
		if line.ID == nil {
			return errors.New(`stdin: a line without "id"`)
		}
		result := output{}
		workflow, err := submitted(sensor, trigger, dependency, line.ID, line.Event)
		if err != nil {
			result.Error = err.Error()
		} else {
			name := workflow.GetName()
			result.Name = &name
			if withResource {
				result.Workflow = workflow.Object
			}
		}
		if err := encoder.Encode(result); err != nil {
			return err
		}
	}
	return scanner.Err()
}

func loadSensor(path string) (*v1alpha1.Sensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sensor := &v1alpha1.Sensor{}
	// The same YAML library argo-events reads manifests with (ghodss/yaml: YAML -> JSON -> type).
	if err := yaml.Unmarshal(raw, sensor); err != nil {
		return nil, fmt.Errorf("%s: not a Sensor: %w", path, err)
	}
	return sensor, nil
}

// requestEvent is the Argo Events event the Pub/Sub EventSource (jsonBody: true) dispatches for
// a request CloudEvent with this id: PubSubEventData with the message data parsed under "body".
func requestEvent(dependency v1alpha1.EventDependency, id json.RawMessage, whole json.RawMessage) (*v1alpha1.Event, error) {
	if len(whole) > 0 {
		return wrap(dependency, whole)
	}
	cloudEvent, err := json.Marshal(map[string]any{
		"specversion": "1.0",
		"type":        "dev.tenant-lifecycle.operation.requested",
		"source":      "sensorcheck",
		"id":          id,
		"subject":     "tenant-1",
		// Every field a parameter reads, so argo-events logs no fallback to a default.
		"data": map[string]any{
			"operation":              "lifecycle.upsert",
			"tenantEnvironment":      map[string]any{},
			"changeset":              map[string]any{},
			"sourceBatchOperationId": "",
		},
	})
	if err != nil {
		return nil, err
	}
	return wrap(dependency, cloudEvent)
}

// wrap puts a request CloudEvent's JSON in the event the Pub/Sub EventSource dispatches.
func wrap(dependency v1alpha1.EventDependency, cloudEvent []byte) (*v1alpha1.Event, error) {
	body := json.RawMessage(cloudEvent)
	data, err := json.Marshal(&events.PubSubEventData{
		ID:          "1",
		Body:        &body,
		Attributes:  map[string]string{},
		PublishTime: time.Unix(0, 0).UTC().String(),
	})
	if err != nil {
		return nil, err
	}
	return &v1alpha1.Event{
		Context: &v1alpha1.EventContext{
			ID:              "1",
			Source:          dependency.EventSourceName,
			SpecVersion:     "1.0",
			Type:            string(v1alpha1.PubSubEvent),
			DataContentType: v1alpha1.MediaTypeJSON,
			Subject:         dependency.EventName,
			Time:            metav1.Unix(0, 0),
		},
		Data: data,
	}, nil
}

// submitted follows triggerOne: template parameters, fetch the resource, resource parameters.
func submitted(sensor *v1alpha1.Sensor, trigger v1alpha1.Trigger, dependency v1alpha1.EventDependency, id json.RawMessage, whole json.RawMessage) (*unstructured.Unstructured, error) {
	event, err := requestEvent(dependency, id, whole)
	if err != nil {
		return nil, err
	}
	eventsMapping := map[string]*v1alpha1.Event{dependency.Name: event}
	current := trigger.DeepCopy() // the template parameters rewrite the trigger
	if err := sensortriggers.ApplyTemplateParameters(eventsMapping, current); err != nil {
		return nil, err
	}
	// No Kubernetes client is needed to fetch an inline resource and apply parameters; only
	// Execute (the submission) would use them.
	impl := argoworkflow.NewArgoWorkflowTrigger(nil, nil, sensor, current, zap.NewNop().Sugar())
	resource, err := impl.FetchResource(context.Background())
	if err != nil {
		return nil, err
	}
	updated, err := impl.ApplyResourceParameters(eventsMapping, resource)
	if err != nil {
		return nil, err
	}
	workflow, ok := updated.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("the trigger resource is a %T, not an object", updated)
	}
	return workflow, nil
}
