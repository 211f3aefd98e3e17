package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// validDashboard is a small dashboard in Grafana's saved-JSON shape: a row, a timeseries
// panel (one target with and one without a datasource), a stat panel, a collapsed row holding
// a table panel, two template variables and the built-in annotation.
const validDashboard = `{
  "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
  "editable": true, "fiscalYearStartMonth": 0, "graphTooltip": 1, "id": null, "links": [],
  "panels": [
    {"collapsed": false, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "id": 1, "panels": [], "title": "Throughput", "type": "row"},
    {"type": "timeseries", "id": 2, "title": "Records/s", "description": "Records per second",
     "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "gridPos": {"h": 8, "w": 12, "x": 0, "y": 1},
     "fieldConfig": {
       "defaults": {
         "color": {"mode": "palette-classic"},
         "custom": {"axisPlacement": "auto", "drawStyle": "line", "fillOpacity": 10, "lineWidth": 1, "showPoints": "never",
           "hideFrom": {"legend": false, "tooltip": false, "viz": false}, "stacking": {"group": "A", "mode": "none"}},
         "mappings": [],
         "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": 80}]},
         "unit": "ops"},
       "overrides": [{"matcher": {"id": "byName", "options": "errors"},
         "properties": [{"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}}]}]},
     "options": {"legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": true},
       "tooltip": {"mode": "multi", "sort": "none"}},
     "targets": [
       {"datasource": {"type": "prometheus", "uid": "${datasource}"}, "editorMode": "code",
        "expr": "sum(rate(flowc_records_total[$__rate_interval]))", "legendFormat": "records", "range": true, "refId": "A"},
       {"expr": "sum(rate(flowc_errors_total[5m]))", "legendFormat": "errors", "refId": "B"}]},
    {"type": "stat", "id": 3, "title": "Pipelines", "pluginVersion": "11.3.0",
     "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "gridPos": {"h": 8, "w": 6, "x": 12, "y": 1},
     "fieldConfig": {"defaults": {"color": {"mode": "thresholds"}, "unit": "short"}, "overrides": []},
     "options": {"colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
       "showPercentChange": false, "percentChangeColorMode": "standard", "textMode": "auto", "wideLayout": true},
     "targets": [{"expr": "flowc_pipelines", "instant": true, "refId": "A"}]},
    {"collapsed": true, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 9}, "id": 4, "title": "Details", "type": "row",
     "panels": [
       {"type": "table", "id": 5, "title": "Build",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 0, "y": 10},
        "options": {"showHeader": true, "cellHeight": "sm", "frameIndex": 0},
        "fieldConfig": {"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": false}}, "overrides": []},
        "targets": [{"expr": "flowc_build_info", "format": "table", "instant": true, "refId": "A"}]}]}
  ],
  "refresh": "30s", "schemaVersion": 39, "tags": ["flowc"],
  "templating": {"list": [
    {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
     "current": {"selected": false, "text": "Prometheus", "value": "prometheus"},
     "hide": 0, "includeAll": false, "multi": false, "options": [], "refresh": 1, "regex": "", "skipUrlSync": false},
    {"name": "pipeline", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
     "definition": "label_values(flowc_records_total, pipeline)",
     "query": {"query": "label_values(flowc_records_total, pipeline)", "refId": "PrometheusVariableQueryEditor-VariableQuery"},
     "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
     "hide": 0, "includeAll": true, "multi": true, "options": [], "refresh": 2, "regex": "", "sort": 1}]},
  "time": {"from": "now-1h", "to": "now"}, "timepicker": {}, "timezone": "browser",
  "title": "flowc", "uid": "flowc", "version": 1, "weekStart": ""
}`

// mutate applies f to a decoded copy of validDashboard and returns the re-encoded JSON.
func mutate(t *testing.T, f func(d map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(validDashboard), &d); err != nil {
		t.Fatal(err)
	}
	f(d)
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func obj(v any, keys ...any) map[string]any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v.(map[string]any)
}

func TestValidDashboard(t *testing.T) {
	res := Check([]byte(validDashboard), false)
	if len(res.Errors) != 0 || len(res.Warnings) != 0 {
		t.Fatalf("valid dashboard: errors %q, warnings %q", res.Errors, res.Warnings)
	}
	if res.Panels != 5 {
		t.Fatalf("panels = %d, want 5", res.Panels)
	}
}

func TestInvalidDashboards(t *testing.T) {
	cases := []struct {
		name string
		edit func(d map[string]any)
		want string // substring of the one expected error
	}{
		{"unknown top-level field", func(d map[string]any) { d["unknownTop"] = 1 },
			`dashboard: Dashboard: unexpected field 'unknownTop'`},
		{"misspelled panel field", func(d map[string]any) {
			p := obj(d, "panels", 1)
			p["gridPoss"] = p["gridPos"]
			delete(p, "gridPos")
		}, `panels[1] "Records/s" (id 2, timeseries): Panel: unexpected field 'gridPoss'`},
		{"schemaVersion of the wrong type", func(d map[string]any) { d["schemaVersion"] = "x" },
			`dashboard: schemaVersion: json: cannot unmarshal string`},
		{"required field missing", func(d map[string]any) { delete(d, "templating") },
			`dashboard: templating: required field is missing from input`},
		{"misspelled template variable field", func(d map[string]any) { obj(d, "templating", "list", 0)["nme"] = "x" },
			`templating.list[0].VariableModel: unexpected field 'nme'`},
		{"misspelled timeseries option", func(d map[string]any) { obj(d, "panels", 1, "options", "legend")["displayMod"] = "list" },
			`options: legend.VizLegendOptions: unexpected field 'displayMod'`},
		{"stat option of the wrong type", func(d map[string]any) { obj(d, "panels", 2, "options")["wideLayout"] = "yes" },
			`(id 3, stat): options: wideLayout: json: cannot unmarshal string`},
		{"custom field config of the wrong type", func(d map[string]any) {
			obj(d, "panels", 1, "fieldConfig", "defaults", "custom")["lineWidth"] = "1"
		}, `fieldConfig.defaults.custom: lineWidth: json: cannot unmarshal string`},
		{"misspelled fieldConfig.defaults field", func(d map[string]any) { obj(d, "panels", 1, "fieldConfig", "defaults")["unitt"] = "ops" },
			`fieldConfig: defaults.FieldConfig: unexpected field 'unitt'`},
		{"misspelled prometheus target field (no datasource on the target)", func(d map[string]any) {
			obj(d, "panels", 1, "targets", 1)["exp"] = "up"
		}, `targets[1] (refId B): Dataquery: unexpected field 'exp'`},
		{"prometheus target field of the wrong type", func(d map[string]any) { obj(d, "panels", 1, "targets", 0)["instant"] = "yes" },
			`targets[0] (refId A): instant: json: cannot unmarshal string`},
		{"misspelled field in a collapsed row's panel", func(d map[string]any) { obj(d, "panels", 3, "panels", 0)["titel"] = "x" },
			`panels[3].panels[0] "Build" (id 5, table): Panel: unexpected field 'titel'`},
		{"gridPos out of bounds (Validate)", func(d map[string]any) { obj(d, "panels", 1, "gridPos")["w"] = 30 },
			`gridPos.w: must be <= 24`},
		{"unknown panel type", func(d map[string]any) { obj(d, "panels", 1)["type"] = "timeserie" },
			`unknown panel type "timeserie"`},
		{"unknown datasource type", func(d map[string]any) {
			obj(d, "panels", 2, "targets", 0)["datasource"] = map[string]any{"type": "promethues", "uid": "x"}
		}, `unknown datasource type "promethues"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Check(mutate(t, tc.edit), false)
			if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], tc.want) {
				t.Fatalf("errors = %q, want one containing %q", res.Errors, tc.want)
			}
		})
	}
}

// Not caught: the SDK's enum types are plain strings, so an out-of-range value passes.
func TestEnumValuesAreNotChecked(t *testing.T) {
	res := Check(mutate(t, func(d map[string]any) {
		obj(d, "panels", 1, "fieldConfig", "defaults", "custom")["drawStyle"] = "linez"
	}), false)
	if len(res.Errors) != 0 {
		t.Fatalf("the SDK started checking enums: %q", res.Errors)
	}
}

// Why main.go decodes panels itself: in v0.0.22 the SDK's own strict dashboard decoder keeps
// no panel it decoded without error (see the package comment). If this starts failing, the
// SDK has fixed it.
func TestSDKStrictDecodeDropsValidPanels(t *testing.T) {
	var d dashboard.Dashboard
	if msgs := flatten(d.UnmarshalJSONStrict([]byte(validDashboard))); len(msgs) != 0 {
		t.Fatalf("unexpected errors: %q", msgs)
	}
	if len(d.Panels) != 4 || d.Panels[1].Panel != nil {
		t.Fatalf("panels: %d, panels[1].Panel = %v", len(d.Panels), d.Panels[1].Panel)
	}
}
