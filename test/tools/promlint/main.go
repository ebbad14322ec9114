// promlint reads a Prometheus text exposition (what /metrics serves) on stdin and lints it
// with client_golang's promlint, the checker behind `promtool check metrics`. It prints one
// problem per line (`metric: text`) and exits 1 when there is any, 0 when the metrics are clean.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func main() {
	problems, err := promlint.New(os.Stdin).Lint()
	if err != nil {
		fmt.Fprintln(os.Stderr, "promlint: cannot parse the metrics:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Printf("%s: %s\n", p.Metric, p.Text)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}
