// Command dashboard-validate checks Grafana dashboard JSON files against Grafana's dashboard
// schema as generated into Go types by grafana-foundation-sdk (from Grafana's CUE kinds),
// without running Grafana (which is AGPL and not used by this project).
//
//	go run ./deploy/grafana/validate [-allow-unknown-types] FILE...
//
// For each file it prints `ok FILE: N panels` (N counts every panel object, rows and the
// panels inside collapsed rows included) or one line per problem, `FILE: WHERE: WHAT`, and
// exits 1 if any file has a problem (2 on a usage error).
//
// What is checked, with the SDK's strict decoders (UnmarshalJSONStrict: unknown fields,
// wrong JSON types, missing required fields) and then its Validate() constraints:
//   - the dashboard object (classic schema, package `dashboard`, i.e. schemaVersion/panels/
//     templating/annotations, not the v2 `dashboardv2*` resource), templating, annotations,
//     links, time, timepicker;
//   - every panel (dashboard.Panel) and row (dashboard.RowPanel), and the panels of a row;
//   - each panel's `options` and `fieldConfig.defaults.custom` with the panel plugin's own
//     types (timeseries.Options, timeseries.FieldConfig, stat.Options, ...), found through
//     the SDK's panel-config variant registry (plugins.RegisterDefaultPlugins);
//   - `fieldConfig` itself (defaults and overrides) with dashboard.FieldConfigSource;
//   - each query target with the data-query type of its datasource (target datasource type,
//     else the panel's, else prometheus), e.g. prometheus.Dataquery.
//
// The SDK's own nested strict decoding is not used as is for panels: in v0.0.22 its
// generated UnmarshalJSONStrict methods return an empty-but-non-nil cog.BuildErrors on
// success, so the generated callers drop every successfully decoded panel, option set and
// target (and so never Validate() them), and Panel decodes `targets` before `datasource`
// (so the panel datasource never selects the query type) and `fieldConfig` non-strictly.
// This program therefore splits the JSON itself and calls the strict decoder of each part.
//
// Not checked (the SDK does not encode it): enum values (e.g. drawStyle "linez" is accepted,
// the Go enum types are plain strings), the contents of untyped fields (override property
// values, transformation options, `options` of panel types the SDK has no schema for),
// duplicate JSON keys (the last one wins), cross-references (panel ids unique, variables
// used exist, gridPos overlap), PromQL syntax, schemaVersion migrations.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// defaultDatasourceType is the query type assumed for targets when neither the target nor its
// panel names a datasource type (flowc's dashboards query Prometheus).
const defaultDatasourceType = "prometheus"

func init() {
	// Registers the panel-config variants (options and fieldConfig.defaults.custom types per
	// panel type) and the data-query variants (per datasource type) with cog's runtime.
	plugins.RegisterDefaultPlugins()
}

func main() {
	allowUnknown := flag.Bool("allow-unknown-types", false,
		"report panel and datasource types the SDK has no schema for as warnings, not errors")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(),
			"usage: dashboard-validate [-allow-unknown-types] DASHBOARD.json...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(os.Stdout, flag.Args(), *allowUnknown))
}

func run(out io.Writer, paths []string, allowUnknown bool) int {
	status := 0
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(out, "%s: %v\n", path, err)
			status = 1
			continue
		}
		res := Check(raw, allowUnknown)
		for _, w := range res.Warnings {
			fmt.Fprintf(out, "%s: warning: %s\n", path, w)
		}
		if len(res.Errors) == 0 {
			fmt.Fprintf(out, "ok %s: %d panels\n", path, res.Panels)
			continue
		}
		for _, e := range res.Errors {
			fmt.Fprintf(out, "%s: %s\n", path, e)
		}
		plural := "s"
		if len(res.Errors) == 1 {
			plural = ""
		}
		fmt.Fprintf(out, "FAIL %s: %d error%s\n", path, len(res.Errors), plural)
		status = 1
	}
	return status
}

// Result is what Check found in one dashboard.
type Result struct {
	Panels   int      // panel objects decoded (rows and nested panels included)
	Errors   []string // "where: what"
	Warnings []string
}

type checker struct {
	allowUnknown bool
	res          Result
}

// Check validates one dashboard JSON document.
func Check(raw []byte, allowUnknown bool) Result {
	c := &checker{allowUnknown: allowUnknown}
	c.dashboard(raw)
	return c.res
}

func (c *checker) errorf(where, format string, args ...any) {
	c.res.Errors = append(c.res.Errors, where+": "+fmt.Sprintf(format, args...))
}

// report adds the errors of an SDK call under `where` (sorted: the SDK reports unknown
// fields in map order).
func (c *checker) report(where string, err error) {
	c.reportMsgs(where, flatten(err))
}

func (c *checker) reportMsgs(where string, msgs []string) {
	sort.Strings(msgs)
	for _, m := range msgs {
		c.errorf(where, "%s", m)
	}
}

func (c *checker) unknownType(where, format string, args ...any) {
	msg := where + ": " + fmt.Sprintf(format, args...)
	if c.allowUnknown {
		c.res.Warnings = append(c.res.Warnings, msg+" (not checked)")
	} else {
		c.res.Errors = append(c.res.Errors, msg+" (pass -allow-unknown-types to accept it unchecked)")
	}
}

// flatten turns an SDK error into messages. The SDK's strict decoders return a nil-valued but
// non-nil cog.BuildErrors when there is nothing wrong, so "no messages" is the success test,
// never err == nil.
func flatten(err error) []string {
	if err == nil {
		return nil
	}
	var many cog.BuildErrors
	if errors.As(err, &many) {
		msgs := make([]string, 0, len(many))
		for _, e := range many {
			msgs = append(msgs, e.Error())
		}
		return msgs
	}
	return []string{err.Error()}
}

// object splits a JSON object into its fields; Go's decoder accepts an object only.
func object(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, errors.New("expected a JSON object, got null")
	}
	return fields, nil
}

func isNull(raw json.RawMessage) bool {
	return raw == nil || string(bytes.TrimSpace(raw)) == "null"
}

func (c *checker) dashboard(raw []byte) {
	fields, err := object(raw)
	if err != nil {
		c.errorf("dashboard", "not a JSON object: %v", err)
		return
	}
	// The panels are checked one by one below; the dashboard decoder gets an empty list.
	rawPanels := fields["panels"]
	if _, ok := fields["panels"]; ok {
		fields["panels"] = json.RawMessage("[]")
	}
	rest, _ := json.Marshal(fields)
	var dash dashboard.Dashboard
	c.report("dashboard", dash.UnmarshalJSONStrict(rest))
	c.report("dashboard", dash.Validate())

	if isNull(rawPanels) {
		return
	}
	var panels []json.RawMessage
	if err := json.Unmarshal(rawPanels, &panels); err != nil {
		c.errorf("dashboard.panels", "%v", err)
		return
	}
	for i, p := range panels {
		c.panelOrRow(fmt.Sprintf("panels[%d]", i), p)
	}
}

// label names a panel in messages: panels[3] "Latency" (id 7, timeseries).
func label(path string, fields map[string]json.RawMessage) string {
	var title, typ string
	var id json.Number
	_ = json.Unmarshal(fields["title"], &title)
	_ = json.Unmarshal(fields["type"], &typ)
	_ = json.Unmarshal(fields["id"], &id)
	var attrs []string
	if id != "" {
		attrs = append(attrs, "id "+id.String())
	}
	if typ != "" {
		attrs = append(attrs, typ)
	}
	s := path
	if title != "" {
		s += fmt.Sprintf(" %q", title)
	}
	if len(attrs) > 0 {
		s += " (" + strings.Join(attrs, ", ") + ")"
	}
	return s
}

func (c *checker) panelOrRow(path string, raw json.RawMessage) {
	fields, err := object(raw)
	if err != nil {
		c.errorf(path, "not a JSON object: %v", err)
		return
	}
	var typ string
	if err := json.Unmarshal(fields["type"], &typ); err == nil && typ == "row" {
		c.row(path, fields)
		return
	}
	c.panel(path, fields)
}

func (c *checker) row(path string, fields map[string]json.RawMessage) {
	c.res.Panels++
	where := label(path, fields)
	rawPanels, hasPanels := fields["panels"]
	if hasPanels {
		fields["panels"] = json.RawMessage("[]") // required by the schema; checked below
	}
	rest, _ := json.Marshal(fields)
	var row dashboard.RowPanel
	c.report(where, row.UnmarshalJSONStrict(rest))
	c.report(where, row.Validate())

	if isNull(rawPanels) {
		return
	}
	var panels []json.RawMessage
	if err := json.Unmarshal(rawPanels, &panels); err != nil {
		c.errorf(where, "panels: %v", err)
		return
	}
	for i, p := range panels {
		// A row holds plain panels only (RowPanel.panels is []Panel): no row in a row.
		sub := fmt.Sprintf("%s.panels[%d]", path, i)
		pf, err := object(p)
		if err != nil {
			c.errorf(sub, "not a JSON object: %v", err)
			continue
		}
		c.panel(sub, pf)
	}
}

// validator is implemented by every SDK type (Options, FieldConfig, Dataquery, ...).
type validator interface{ Validate() error }

func (c *checker) panel(path string, fields map[string]json.RawMessage) {
	c.res.Panels++
	where := label(path, fields)

	// options, fieldConfig and targets are decoded here rather than by Panel's decoder.
	rawOptions, rawFieldConfig, rawTargets := fields["options"], fields["fieldConfig"], fields["targets"]
	delete(fields, "options")
	delete(fields, "fieldConfig")
	delete(fields, "targets")
	rest, _ := json.Marshal(fields)
	var panel dashboard.Panel
	c.report(where, panel.UnmarshalJSONStrict(rest))

	variant, known := cog.ConfigForPanelcfgVariant(panel.Type)
	if !known && panel.Type != "" {
		c.unknownType(where, "unknown panel type %q: the SDK has no schema for its options and fieldConfig.defaults.custom", panel.Type)
	}

	if !isNull(rawOptions) {
		if known && variant.StrictOptionsUnmarshaler != nil {
			if msgs := flattenPair(variant.StrictOptionsUnmarshaler(rawOptions)); len(msgs) > 0 {
				c.reportMsgs(where+": options", msgs)
			} else if opts, err := variant.OptionsUnmarshaler(rawOptions); err != nil {
				c.report(where+": options", err)
			} else {
				panel.Options = opts
				if v, ok := opts.(validator); ok {
					c.report(where+": options", v.Validate())
				}
			}
		} else if _, err := object(rawOptions); err != nil {
			c.errorf(where, "options: %v", err)
		}
	}

	if !isNull(rawFieldConfig) {
		c.fieldConfig(where, &panel, rawFieldConfig, variant, known)
	}

	if !isNull(rawTargets) {
		panelDsType := ""
		if panel.Datasource != nil && panel.Datasource.Type != nil {
			panelDsType = *panel.Datasource.Type
		}
		var targets []json.RawMessage
		if err := json.Unmarshal(rawTargets, &targets); err != nil {
			c.errorf(where, "targets: %v", err)
		} else {
			for i, t := range targets {
				if q := c.target(fmt.Sprintf("%s: targets[%d]", where, i), t, panelDsType); q != nil {
					panel.Targets = append(panel.Targets, q)
				}
			}
		}
	}

	// Constraints (type non-empty, gridPos bounds, ...) over the panel, its fieldConfig and
	// its decoded targets.
	c.report(where, panel.Validate())
}

// flattenPair is flatten for the (value, error) results of the SDK's variant unmarshalers.
func flattenPair(_ any, err error) []string { return flatten(err) }

func (c *checker) fieldConfig(where string, panel *dashboard.Panel, raw json.RawMessage, variant variants.PanelcfgConfig, known bool) {
	var fcs dashboard.FieldConfigSource
	c.report(where+": fieldConfig", fcs.UnmarshalJSONStrict(raw))

	var custom struct {
		Defaults struct {
			Custom json.RawMessage `json:"custom"`
		} `json:"defaults"`
	}
	_ = json.Unmarshal(raw, &custom) // shape errors are reported above
	if known && variant.StrictFieldConfigUnmarshaler != nil && !isNull(custom.Defaults.Custom) {
		cw := where + ": fieldConfig.defaults.custom"
		if msgs := flattenPair(variant.StrictFieldConfigUnmarshaler(custom.Defaults.Custom)); len(msgs) > 0 {
			c.reportMsgs(cw, msgs)
		} else if fc, err := variant.FieldConfigUnmarshaler(custom.Defaults.Custom); err != nil {
			c.report(cw, err)
		} else {
			fcs.Defaults.Custom = fc
			if v, ok := fc.(validator); ok {
				c.report(cw, v.Validate())
			}
		}
	}
	panel.FieldConfig = &fcs
}

// target decodes one query with the data-query type of its datasource and returns it (nil
// when it has errors or no schema).
func (c *checker) target(where string, raw json.RawMessage, panelDsType string) variants.Dataquery {
	fields, err := object(raw)
	if err != nil {
		c.errorf(where, "not a JSON object: %v", err)
		return nil
	}
	dsType := ""
	if ds := fields["datasource"]; !isNull(ds) {
		var ref struct {
			Type *string `json:"type"`
		}
		// A non-object datasource is reported by the strict decoder below.
		if json.Unmarshal(ds, &ref) == nil && ref.Type != nil {
			dsType = *ref.Type
		}
	}
	if dsType == "" {
		dsType = panelDsType
	}
	if dsType == "" {
		dsType = defaultDatasourceType
	}
	var refID string
	_ = json.Unmarshal(fields["refId"], &refID)
	if refID != "" {
		where += fmt.Sprintf(" (refId %s)", refID)
	}

	strict, err := cog.StrictUnmarshalDataquery(raw, dsType)
	if _, unknown := strict.(variants.UnknownDataquery); unknown {
		c.unknownType(where, "unknown datasource type %q: the SDK has no query schema for it", dsType)
		return nil
	}
	if msgs := flatten(err); len(msgs) > 0 {
		c.reportMsgs(where, msgs)
		return nil
	}
	// The strict decoder drops the value on success (see the package comment): decode again.
	q, err := cog.UnmarshalDataquery(raw, dsType)
	if err != nil {
		c.report(where, err)
		return nil
	}
	return q
}
