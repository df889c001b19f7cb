package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/metrics"
	"github.com/livrec/livrec/internal/notify"
	"github.com/livrec/livrec/internal/peer"
	"github.com/livrec/livrec/internal/record"
	"github.com/livrec/livrec/internal/rules"
	"github.com/livrec/livrec/internal/templatedb"
	"github.com/livrec/livrec/internal/vod"
)

// openAPIOps parses openapi.yaml and returns its operations as "METHOD /path" patterns
// (the ServeMux syntax; OpenAPI's {id} is the same), and the whole document.
func openAPIOps(t *testing.T) ([]string, map[string]any) {
	t.Helper()
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("openapi.yaml is not YAML: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		t.Fatalf("openapi: %q, want 3.0.x", v)
	}
	paths, ok := doc["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatal("no paths")
	}
	var ops []string
	opIDs := map[string]bool{}
	for p, item := range paths {
		for method, op := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
			default:
				continue // parameters, summary, ...
			}
			ops = append(ops, strings.ToUpper(method)+" "+p)
			o := op.(map[string]any)
			id, _ := o["operationId"].(string)
			if id == "" || opIDs[id] {
				t.Errorf("%s %s: missing or duplicate operationId %q", method, p, id)
			}
			opIDs[id] = true
			if resp, _ := o["responses"].(map[string]any); len(resp) == 0 {
				t.Errorf("%s %s: no responses", method, p)
			}
		}
	}
	slices.Sort(ops)
	return ops, doc
}

// registeredAPIRoutes finds the /api/v1 patterns passed to Handle or HandleFunc in the
// package's non-test sources.
func registeredAPIRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var routes []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: route pattern is not a string literal; the OpenAPI sync test cannot see it", fset.Position(call.Pos()))
				return true
			}
			pattern, _ := strconv.Unquote(lit.Value)
			method, p, _ := strings.Cut(pattern, " ")
			if strings.HasPrefix(p, "/api/") {
				if method == "" || strings.Contains(method, "/") {
					t.Errorf("%s: API route %q has no method", fset.Position(call.Pos()), pattern)
				}
				routes = append(routes, pattern)
			}
			return true
		})
	}
	slices.Sort(routes)
	return slices.Compact(routes)
}

// TestOpenAPIMatchesRoutes: openapi.yaml parses and documents exactly the /api/v1 routes
// the package registers, and each documented operation reaches that route in the mux.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ops, doc := openAPIOps(t)
	routes := registeredAPIRoutes(t)
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %q is registered but not in openapi.yaml", r)
		}
	}
	for _, op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("openapi.yaml documents %q, which is not registered", op)
		}
	}

	// Through the real mux: Handler(), plus the rules routes if Handler does not add them yet.
	s := &Server{Metrics: metrics.New()}
	var h any = s.routes()
	mux, ok := h.(*http.ServeMux)
	if !ok {
		t.Fatalf("Handler() is a %T, not a *http.ServeMux", s.Handler())
	}
	if _, p := mux.Handler(httptest.NewRequest("GET", "/api/v1/rules", nil)); p == "" {
		s.registerRules(mux)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for _, op := range ops {
		method, p, _ := strings.Cut(op, " ")
		req := httptest.NewRequest(method, param.ReplaceAllString(p, "00000000-0000-4000-8000-000000000000"), nil)
		if _, pattern := mux.Handler(req); pattern != op {
			t.Errorf("%s %s reaches pattern %q, want %q", method, req.URL.Path, pattern, op)
		}
	}

	// Every $ref points into the document.
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				if !resolves(doc, ref) {
					t.Errorf("$ref %q does not resolve", ref)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
}

func resolves(doc map[string]any, ref string) bool {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = doc
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// TestOpenAPISchemasMatchTypes: the documented object properties are exactly the JSON
// fields of the Go types the handlers read and write.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	_, doc := openAPIOps(t)
	for name, typ := range map[string]reflect.Type{
		"RuleFields":            reflect.TypeFor[rules.Rule](),
		"RecordFormat":          reflect.TypeFor[rules.RecordFormat](),
		"Rule":                  reflect.TypeFor[catalog.StoredRule](),
		"RuleInput":             reflect.TypeFor[ruleInput](),
		"RuleList":              reflect.TypeFor[ruleList](),
		"TranscodeTemplate":     reflect.TypeFor[templatedb.Stored](),
		"TranscodeTemplateList": reflect.TypeFor[templateList](),
		"Recording":             reflect.TypeFor[recording](),
		"RecordingList":         reflect.TypeFor[recordingList](),
		"Stream":                reflect.TypeFor[record.StreamInfo](),
		"NodeStream":            reflect.TypeFor[peer.NodeStream](),
		"NodeError":             reflect.TypeFor[peer.NodeError](),
		"ClusterStatus":         reflect.TypeFor[cluster.Status](),
		"ClusterNode":           reflect.TypeFor[cluster.NodeStatus](),
		"ClusterCounts":         reflect.TypeFor[cluster.Counts](),
		"RecordCommand":         reflect.TypeFor[commandRequest](),
		"IndexRequest":          reflect.TypeFor[indexRequest](),
		"Task":                  reflect.TypeFor[catalog.Task](),
		"NotifyConfig":          reflect.TypeFor[notify.Config](),
		"Callback":              reflect.TypeFor[notify.Callback](),
		"CallbackAttempt":       reflect.TypeFor[notify.Attempt](),
		"Status":                reflect.TypeFor[status](),
		"DiskStatus":            reflect.TypeFor[DiskStatus](),
		"StoreStatus":           reflect.TypeFor[StoreStatus](),
		"RecentError":           reflect.TypeFor[RecentError](),
		"Asset":                 reflect.TypeFor[assetJSON](),
		"PlayInfo":              reflect.TypeFor[playInfoJSON](),
		"AssetList":             reflect.TypeFor[assetList](),
		"AssetPatch":            reflect.TypeFor[assetPatch](),
		"TranscodeGroupList":    reflect.TypeFor[transcodeGroupList](),
		"TranscodeGroup":        reflect.TypeFor[vod.TranscodeGroup](),
		"VodTranscodeTemplate":  reflect.TypeFor[vod.TranscodeTemplate](),
		"Job":                   reflect.TypeFor[jobs.Info](),
		"JobLogLine":            reflect.TypeFor[jobs.LogLine](),
		"JobList":               reflect.TypeFor[jobList](),
		"Error":                 reflect.TypeFor[problemsBody](), // plus "field" (apiError)
	} {
		got := slices.Sorted(maps.Keys(schemaProps(t, doc, "#/components/schemas/"+name)))
		want := slices.Sorted(maps.Keys(jsonFields(typ)))
		if name == "Error" {
			want = slices.Sorted(slices.Values(append(want, "field")))
		}
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has properties %v; %v has JSON fields %v", name, got, typ, want)
		}
	}
}

// schemaProps collects the properties of a schema, following $ref and allOf.
func schemaProps(t *testing.T, doc map[string]any, ref string) map[string]any {
	t.Helper()
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := cur.(map[string]any)
		cur = m[part]
	}
	schema, ok := cur.(map[string]any)
	if !ok {
		t.Fatalf("no schema %s", ref)
	}
	out := map[string]any{}
	if r, ok := schema["$ref"].(string); ok {
		maps.Copy(out, schemaProps(t, doc, r))
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		for k, v := range props {
			out[k] = v
		}
	}
	all, _ := schema["allOf"].([]any)
	for _, part := range all {
		p := part.(map[string]any)
		var sub map[string]any
		if r, ok := p["$ref"].(string); ok {
			sub = schemaProps(t, doc, r)
		} else {
			props, _ := p["properties"].(map[string]any)
			sub = props
		}
		maps.Copy(out, sub)
	}
	return out
}
