// kstatus reads one Kubernetes object as JSON on stdin and prints what kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library behind kpt, Flux health checks and
// Config Sync) computes for it, as JSON: {"status": "Current", "message": "..."}.
// mooring's tests use it to check that its conditions read as intended.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		fail(err)
	}
	result, err := status.Compute(obj)
	if err != nil {
		fail(err)
	}
	out, _ := json.Marshal(map[string]string{"status": result.Status.String(), "message": result.Message})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
