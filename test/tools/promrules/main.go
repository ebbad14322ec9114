// promrules checks and tests Prometheus rule files with Prometheus's own packages, so that
// mooring's tests need neither the whole promtool CLI nor a Prometheus server:
//
//	promrules check FILE...   validates rule files as `promtool check rules` does (rulefmt)
//	promrules test FILE...    runs rule unit tests written in promtool's `test rules` format
//	                          (rule_files, evaluation_interval, tests with input_series and
//	                          alert_rule_test), evaluating the rules with Prometheus's rule
//	                          manager and PromQL engine; exit 1 when an expectation fails.
//
// Only alert_rule_test is supported; promql_expr_test is rejected rather than ignored.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v3"
)

type testFile struct {
	RuleFiles          []string       `yaml:"rule_files"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	Tests              []testGroup    `yaml:"tests"`
}

type testGroup struct {
	Name        string         `yaml:"name"`
	Interval    model.Duration `yaml:"interval"`
	InputSeries []struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	} `yaml:"input_series"`
	AlertRuleTests []alertTest `yaml:"alert_rule_test"`
	PromqlExprTest []any       `yaml:"promql_expr_test"`
}

type alertTest struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	} `yaml:"exp_alerts"`
}

func main() {
	if len(os.Args) < 3 || (os.Args[1] != "check" && os.Args[1] != "test") {
		fmt.Fprintln(os.Stderr, "usage: promrules check|test FILE...")
		os.Exit(2)
	}
	failed := false
	for _, file := range os.Args[2:] {
		var errs []error
		if os.Args[1] == "check" {
			errs = check(file)
		} else {
			errs = test(file)
		}
		for _, err := range errs {
			fmt.Printf("%s: %v\n", file, err)
		}
		if len(errs) > 0 {
			failed = true
		} else {
			fmt.Printf("%s: SUCCESS\n", file)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(file string) []error {
	groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return errs
	}
	count := 0
	for _, g := range groups.Groups {
		count += len(g.Rules)
	}
	if count == 0 {
		return []error{fmt.Errorf("no rules")}
	}
	return nil
}

func test(file string) []error {
	data, err := os.ReadFile(file)
	if err != nil {
		return []error{err}
	}
	var tf testFile
	decoder := yaml.NewDecoder(strings.NewReader(string(data)))
	decoder.KnownFields(true)
	if err := decoder.Decode(&tf); err != nil {
		return []error{err}
	}
	if tf.EvaluationInterval == 0 {
		tf.EvaluationInterval = model.Duration(time.Minute)
	}
	ruleFiles := make([]string, len(tf.RuleFiles))
	for i, f := range tf.RuleFiles {
		ruleFiles[i] = filepath.Join(filepath.Dir(file), f)
	}
	var errs []error
	for i, tg := range tf.Tests {
		name := tg.Name
		if name == "" {
			name = fmt.Sprintf("test %d", i+1)
		}
		for _, err := range runGroup(tg, time.Duration(tf.EvaluationInterval), ruleFiles) {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errs
}

func runGroup(tg testGroup, evalInterval time.Duration, ruleFiles []string) []error {
	if len(tg.PromqlExprTest) > 0 {
		return []error{fmt.Errorf("promql_expr_test is not supported by this tool")}
	}
	if tg.Interval == 0 {
		tg.Interval = model.Duration(evalInterval)
	}
	var load strings.Builder
	fmt.Fprintf(&load, "load %s\n", time.Duration(tg.Interval))
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	suite, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true})
	if err != nil {
		return []error{err}
	}
	defer suite.Close()
	manager := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		AppendableV2: suite.Storage(),
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
	})
	loaded, loadErrs := manager.LoadGroups(time.Duration(tg.Interval), labels.EmptyLabels(), "", nil, false, ruleFiles...)
	if len(loadErrs) > 0 {
		return loadErrs
	}
	groups := make([]*rules.Group, 0, len(loaded))
	for _, g := range loaded {
		groups = append(groups, g)
		for _, r := range g.Rules() {
			if a, ok := r.(*rules.AlertingRule); ok {
				// As if the rule had been running all along: firing alerts get their ALERTS series.
				a.SetRestored(true)
			}
		}
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name() < groups[j].Name() })

	byTime := map[time.Duration][]alertTest{}
	var maxTime time.Duration
	for _, at := range tg.AlertRuleTests {
		if at.Alertname == "" {
			return []error{fmt.Errorf("an alert_rule_test at %s has no alertname", at.EvalTime)}
		}
		t := time.Duration(at.EvalTime)
		byTime[t] = append(byTime[t], at)
		maxTime = max(maxTime, t)
	}

	var errs []error
	start := time.Unix(0, 0).UTC()
	for offset := time.Duration(0); offset <= maxTime; offset += evalInterval {
		ts := start.Add(offset)
		var evalErr error
		suite.WithSamplesTill(ts, func(err error) {
			if err != nil {
				evalErr = err
				return
			}
			for _, g := range groups {
				g.Eval(suite.Context(), ts)
				for _, r := range g.Rules() {
					if r.LastError() != nil {
						evalErr = fmt.Errorf("rule %s at %s: %w", r.Name(), offset, r.LastError())
					}
				}
			}
		})
		if evalErr != nil {
			return append(errs, evalErr)
		}
		// Expectations between this evaluation and the next are checked against this one.
		for t, tests := range byTime {
			if t < offset || t >= offset+evalInterval {
				continue
			}
			for _, at := range tests {
				if err := compare(at, firing(groups, at.Alertname)); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errs
}

func firing(groups []*rules.Group, name string) []string {
	var got []string
	for _, g := range groups {
		for _, r := range g.Rules() {
			a, ok := r.(*rules.AlertingRule)
			if !ok || a.Name() != name {
				continue
			}
			for _, alert := range a.ActiveAlerts() {
				if alert.State == rules.StateFiring {
					got = append(got, describe(alert.Labels, alert.Annotations))
				}
			}
		}
	}
	slices.Sort(got)
	return got
}

func compare(at alertTest, got []string) error {
	want := make([]string, 0, len(at.ExpAlerts))
	for _, e := range at.ExpAlerts {
		l := map[string]string{"alertname": at.Alertname}
		for k, v := range e.ExpLabels {
			l[k] = v
		}
		want = append(want, describe(labels.FromMap(l), labels.FromMap(e.ExpAnnotations)))
	}
	slices.Sort(want)
	if slices.Equal(want, got) {
		return nil
	}
	return fmt.Errorf("alertname: %s, time: %s,\n    exp: %v\n    got: %v", at.Alertname, at.EvalTime, want, got)
}

func describe(l, annotations labels.Labels) string {
	return fmt.Sprintf("labels:%s annotations:%s", l.String(), annotations.String())
}
