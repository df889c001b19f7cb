package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/ruledb"
	"github.com/livrec/livrec/internal/rules"
)

// rulesEnv is an httptest server with only the rules routes, a real catalog in a temp
// dir, and the sets handed to OnChange.
type rulesEnv struct {
	t   *testing.T
	srv *httptest.Server

	mu   sync.Mutex
	sets []*rules.Set
}

func newRulesEnv(t *testing.T) *rulesEnv {
	t.Helper()
	cat, err := catalog.Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	e := &rulesEnv{t: t}
	mux := http.NewServeMux()
	(&ruleAPI{store: ruledb.New(cat, func(s *rules.Set) {
		e.mu.Lock()
		e.sets = append(e.sets, s)
		e.mu.Unlock()
	}, slog.New(slog.DiscardHandler)).Endpoints([]string{"s3.example.com:9000"})}).register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// set returns the last published rule set and how many were published.
func (e *rulesEnv) set() (*rules.Set, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sets) == 0 {
		return nil, 0
	}
	return e.sets[len(e.sets)-1], len(e.sets)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", r.status, err, r.body)
	}
}

func (e *rulesEnv) do(method, path, contentType string, body []byte) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func (e *rulesEnv) send(method, path, body string) response {
	e.t.Helper()
	return e.do(method, path, "application/json", []byte(body))
}

// create posts a rule and returns the stored one.
func (e *rulesEnv) create(body string) catalog.StoredRule {
	e.t.Helper()
	r := e.send("POST", "/api/v1/rules", body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.status, r.body)
	}
	var sr catalog.StoredRule
	r.json(e.t, &sr)
	return sr
}

type errBody struct {
	Error  string `json:"error"`
	Field  string `json:"field"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

const okRule = `{"domainName":"example.com","appName":"live","streamName":"cam1","recordFormats":[{"format":"m3u8"},{"format":"flv"}]}`

// withFormats returns okRule's key with the given recordFormats JSON and extra fields.
func withFormats(formats, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"domainName":"bad.example.com","appName":"live","recordFormats":` + formats + extra + `}`
}

func TestRulesBadInput(t *testing.T) {
	e := newRulesEnv(t)
	base := e.create(okRule)
	other := e.create(`{"domainName":"example.com","appName":"live","streamName":"cam2","recordFormats":[{"format":"mp4"}]}`)
	e.create(`{"domainName":"example.com","appName":"live","streamName":"cam3","ossEndpoint":"s3.example.com:9000","ossBucket":"bkt","recordFormats":[{"format":"mp4"}]}`)
	_, published := e.set()
	const m3u8 = `[{"format":"m3u8"}]`

	cases := []struct {
		name        string
		method      string
		path        string
		contentType string // "" = application/json; "-" = none
		body        string
		status      int
		field       string // the field the error must name (in "field", in "errors", and in the message)
		msg         string // a substring of the message, when there is no field or to check the text
	}{
		// Wrong JSON types.
		{name: "delayTime string", body: withFormats(m3u8, `"delayTime":"180"`), status: 400, field: "delayTime", msg: `want an integer, got string "180"`},
		{name: "delayTime float", body: withFormats(m3u8, `"delayTime":30.5`), status: 400, field: "delayTime", msg: "want an integer"},
		{name: "delayTime huge", body: withFormats(m3u8, `"delayTime":1e400`), status: 400, field: "delayTime", msg: "want an integer"},
		{name: "domainName number", body: `{"domainName":42,"appName":"live","recordFormats":[{"format":"flv"}]}`, status: 400, field: "domainName", msg: "want a string, got number 42"},
		{name: "onDemand bool", body: withFormats(m3u8, `"onDemand":true`), status: 400, field: "onDemand", msg: "want an integer, got boolean true"},
		{name: "sliceDuration string nested", body: withFormats(`[{"format":"flv"},{"format":"m3u8","sliceDuration":"10"}]`, ""), status: 400, field: "recordFormats[1].sliceDuration", msg: "want an integer"},
		{name: "recordFormats object", body: withFormats(`{"format":"m3u8"}`, ""), status: 400, field: "recordFormats", msg: "want an array, got an object"},
		{name: "recordFormats item string", body: withFormats(`["m3u8"]`, ""), status: 400, field: "recordFormats[0]", msg: "want an object"},
		{name: "recordFormats item null", body: withFormats(`[null]`, ""), status: 400, field: "recordFormats[0]", msg: "got null"},
		// Unknown fields.
		{name: "unknown top-level field", body: withFormats(m3u8, `"delay":180`), status: 400, field: "delay", msg: "unknown field"},
		{name: "unknown field suggestion", body: `{"domain":"a.com","appName":"live","recordFormats":[{"format":"flv"}]}`, status: 400, field: "domain", msg: `did you mean "domainName"`},
		{name: "wrong case is unknown", body: withFormats(m3u8, `"DelayTime":180`), status: 400, field: "DelayTime", msg: "unknown field"},
		{name: "unknown nested field", body: withFormats(`[{"format":"m3u8","segmentDuration":6}]`, ""), status: 400, field: "recordFormats[0].segmentDuration", msg: "unknown field"},
		// Missing required fields.
		{name: "missing domainName", body: `{"appName":"live","recordFormats":[{"format":"flv"}]}`, status: 400, field: "domainName", msg: "is required"},
		{name: "null appName", body: `{"domainName":"a.com","appName":null,"recordFormats":[{"format":"flv"}]}`, status: 400, field: "appName", msg: "is required"},
		{name: "missing recordFormats", body: `{"domainName":"a.com","appName":"live"}`, status: 400, field: "recordFormats", msg: "is required"},
		{name: "missing format", body: withFormats(`[{"cycleDuration":3600}]`, ""), status: 400, field: "recordFormats[0].format", msg: "is required"},
		{name: "empty recordFormats", body: withFormats(`[]`, ""), status: 400, field: "recordFormats", msg: "at least one format"},
		// Out-of-range and invalid values (rules.Validate).
		{name: "delayTime low", body: withFormats(m3u8, `"delayTime":14`), status: 400, field: "delayTime", msg: "allowed 15–21600 seconds"},
		{name: "delayTime high", body: withFormats(m3u8, `"delayTime":21601`), status: 400, field: "delayTime", msg: "allowed 15–21600 seconds"},
		{name: "sliceDuration high", body: withFormats(`[{"format":"m3u8","sliceDuration":31}]`, ""), status: 400, field: "recordFormats[0].sliceDuration", msg: "allowed 5–30 seconds"},
		{name: "cycleDuration low", body: withFormats(`[{"format":"mp4","cycleDuration":60}]`, ""), status: 400, field: "recordFormats[0].cycleDuration", msg: "allowed 900–21600 seconds"},
		{name: "onDemand unknown", body: withFormats(m3u8, `"onDemand":3`), status: 400, field: "onDemand", msg: "not one of 0, 1, 2, 7"},
		{name: "unknown format", body: withFormats(`[{"format":"avi"}]`, ""), status: 400, field: "recordFormats[0].format", msg: "not one of m3u8, flv, mp4, cmaf"},
		{name: "star inside appName", body: `{"domainName":"a.com","appName":"li*ve","recordFormats":[{"format":"flv"}]}`, status: 400, field: "appName", msg: "only allowed alone"},
		{name: "star inside streamName", body: withFormats(m3u8, `"streamName":"cam*"`), status: 400, field: "streamName", msg: "only allowed alone"},
		{name: "star inside domainName", body: `{"domainName":"*.a.com","appName":"live","recordFormats":[{"format":"flv"}]}`, status: 400, field: "domainName", msg: "only allowed alone"},
		{name: "stream under star app", body: `{"domainName":"a.com","appName":"*","streamName":"cam1","recordFormats":[{"format":"flv"}]}`, status: 400, field: "streamName", msg: "needs a specific appName"},
		{name: "cmaf with m3u8", body: withFormats(`[{"format":"cmaf"},{"format":"m3u8"}]`, ""), status: 400, field: "recordFormats", msg: "cmaf and m3u8"},
		{name: "format twice", body: withFormats(`[{"format":"flv"},{"format":"flv"}]`, ""), status: 400, field: "recordFormats[1].format", msg: "already used"},
		{name: "slice setting on flv", body: withFormats(`[{"format":"flv","sliceDuration":10}]`, ""), status: 400, field: "recordFormats[0].sliceDuration", msg: "only for m3u8 and cmaf"},
		{name: "objectPrefix without times", body: withFormats(`[{"format":"flv","objectPrefix":"rec/{AppName}"}]`, ""), status: 400, field: "recordFormats[0].objectPrefix", msg: "must contain"},
		{name: "ossEndpoint not configured", body: withFormats(m3u8, `"ossEndpoint":"x:9000","ossBucket":"bkt"`), status: 400, field: "ossEndpoint",
			msg: `"x:9000" is not one of the s3 endpoints (s3.example.com:9000)`},
		{name: "update to an ossEndpoint not configured", method: "PUT", path: "/api/v1/rules/" + base.ID,
			body: okRule[:len(okRule)-1] + `,"ossEndpoint":"x:9000","ossBucket":"bkt"}`, status: 400, field: "ossEndpoint", msg: "not one of the s3 endpoints"},
		{name: "id on create", body: `{"id":"` + base.ID + `","domainName":"a.com","appName":"live","recordFormats":[{"format":"flv"}]}`, status: 400, field: "id", msg: "assigned by the server"},
		// Body and transport problems.
		{name: "malformed JSON", body: `{"domainName":"a.com",`, status: 400, msg: "malformed JSON"},
		{name: "syntax error position", body: "{\n\"domainName\" \"a.com\"}", status: 400, msg: "line 2"},
		{name: "trailing data", body: okRule + ` {}`, status: 400, msg: "unexpected data after the object"},
		{name: "array body", body: `[` + okRule + `]`, status: 400, msg: "want a JSON object"},
		{name: "null body", body: `null`, status: 400, msg: "want a JSON object"},
		{name: "empty body", body: ``, status: 400, msg: "empty"},
		{name: "huge body", body: `{"domainName":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413, msg: "1 MiB"},
		{name: "huge whitespace body", body: okRule + strings.Repeat(" ", 1<<20), status: 413, msg: "1 MiB"},
		{name: "text/plain", contentType: "text/plain", body: okRule, status: 415, msg: "application/json"},
		{name: "no Content-Type", contentType: "-", body: okRule, status: 415, msg: "application/json"},
		{name: "form Content-Type", contentType: "application/x-www-form-urlencoded", body: okRule, status: 415, msg: "application/json"},
		{name: "latin1 charset", contentType: "application/json; charset=iso-8859-1", body: okRule, status: 415, msg: "utf-8"},
		// Conflicts.
		{name: "duplicate key", body: `{"domainName":"EXAMPLE.com","appName":"live","streamName":"cam1","recordFormats":[{"format":"mp4"}]}`, status: 409, field: "streamName", msg: "already exists"},
		{name: "update onto another key", method: "PUT", path: "/api/v1/rules/" + other.ID, body: okRule, status: 409, field: "streamName", msg: base.ID},
		{name: "update id mismatch", method: "PUT", path: "/api/v1/rules/" + base.ID, body: `{"id":"` + other.ID + `",` + okRule[1:], status: 400, field: "id", msg: "does not match"},
		{name: "update invalid", method: "PUT", path: "/api/v1/rules/" + base.ID, body: withFormats(`[{"format":"m3u8","sliceDuration":2}]`, ""), status: 400, field: "recordFormats[0].sliceDuration", msg: "allowed 5–30"},
		// Bad ids.
		{name: "get non-uuid id", method: "GET", path: "/api/v1/rules/nope", status: 404, field: "id", msg: "no rule"},
		{name: "get unknown id", method: "GET", path: "/api/v1/rules/00000000-0000-4000-8000-000000000000", status: 404, field: "id", msg: "no rule"},
		{name: "put unknown id", method: "PUT", path: "/api/v1/rules/00000000-0000-4000-8000-000000000000", body: okRule, status: 404, field: "id", msg: "no rule"},
		{name: "delete unknown id", method: "DELETE", path: "/api/v1/rules/00000000-0000-4000-8000-000000000000", status: 404, field: "id", msg: "no rule"},
		{name: "delete sql-ish id", method: "DELETE", path: "/api/v1/rules/'%20OR%201=1--", status: 404, field: "id", msg: "no rule"},
		// Bad paging.
		{name: "page zero", method: "GET", path: "/api/v1/rules?page=0", status: 400, field: "page", msg: "want an integer 1–"},
		{name: "page not a number", method: "GET", path: "/api/v1/rules?page=two", status: 400, field: "page", msg: `"two"`},
		{name: "page empty", method: "GET", path: "/api/v1/rules?page=", status: 400, field: "page", msg: "want an integer"},
		{name: "pageSize too big", method: "GET", path: "/api/v1/rules?pageSize=101", status: 400, field: "pageSize", msg: "1–100"},
		{name: "pageSize negative", method: "GET", path: "/api/v1/rules?pageSize=-5", status: 400, field: "pageSize", msg: "1–100"},
		{name: "page overflow", method: "GET", path: "/api/v1/rules?page=99999999999999999999", status: 400, field: "page", msg: "want an integer"},
	}
	if _, ok := jsonFields(reflect.TypeFor[rules.Rule]())["startTime"]; ok { // recording windows
		cases = append(cases, []struct {
			name, method, path, contentType, body string
			status                                int
			field, msg                            string
		}{
			{name: "startTime number", body: withFormats(m3u8, `"streamName":"cam1","startTime":1795600000`), status: 400, field: "startTime", msg: "want an RFC 3339 time string, got number"},
			{name: "endTime not RFC 3339", body: withFormats(m3u8, `"streamName":"cam1","endTime":"2026-11-25 10:00"`), status: 400, field: "endTime", msg: "RFC 3339"},
			{name: "window on app-level rule", body: withFormats(m3u8, `"startTime":"2026-11-25T10:00:00Z"`), status: 400, field: "startTime", msg: "stream-level"},
		}...)
	}
	if len(cases) < 20 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, path := c.method, c.path
			if method == "" {
				method, path = "POST", "/api/v1/rules"
			}
			ct := c.contentType
			switch ct {
			case "":
				ct = "application/json"
			case "-":
				ct = ""
			}
			var body []byte
			if method == "POST" || method == "PUT" {
				body = []byte(c.body)
			}
			r := e.do(method, path, ct, body)
			if r.status != c.status {
				t.Fatalf("status %d, want %d\n%s", r.status, c.status, r.body)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			var eb errBody
			r.json(t, &eb)
			if eb.Error == "" {
				t.Fatalf("no error message: %s", r.body)
			}
			if c.msg != "" && !strings.Contains(eb.Error, c.msg) {
				t.Errorf("message %q does not contain %q", eb.Error, c.msg)
			}
			if c.field != "" {
				named := eb.Field == c.field
				for _, fe := range eb.Errors {
					named = named || fe.Field == c.field
				}
				if !named {
					t.Errorf("field %q not named in %s", c.field, r.body)
				}
				if !strings.Contains(eb.Error, c.field) {
					t.Errorf("message %q does not name the field %q", eb.Error, c.field)
				}
			}
		})
	}
	if _, n := e.set(); n != published {
		t.Errorf("failed requests published %d rule sets", n-published)
	}

	// A body of unknown length (chunked) is cut at 1 MiB too.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/rules",
		io.MultiReader(strings.NewReader(`{"domainName":"`), strings.NewReader(strings.Repeat("a", 2<<20))))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked huge body: length %d, status %d", req.ContentLength, resp.StatusCode)
	}
}

// TestRulesSeveralProblems: every problem is reported, each with its field.
func TestRulesSeveralProblems(t *testing.T) {
	e := newRulesEnv(t)
	r := e.send("POST", "/api/v1/rules", `{"domainName":"a.com","appName":"live","delayTime":1,"onDemand":9,
		"recordFormats":[{"format":"m3u8","sliceDuration":99},{"format":"cmaf"}]}`)
	if r.status != 400 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	var eb errBody
	r.json(t, &eb)
	want := []string{"delayTime", "onDemand", "recordFormats[0].sliceDuration", "recordFormats"}
	if len(eb.Errors) != len(want) {
		t.Fatalf("errors %s", r.body)
	}
	for i, w := range want {
		if eb.Errors[i].Field != w || eb.Errors[i].Message == "" || !strings.Contains(eb.Error, w) {
			t.Errorf("errors[%d] = %+v, want field %q", i, eb.Errors[i], w)
		}
	}
	// JSON-level problems are collected too: a type error and an unknown field at once.
	r = e.send("POST", "/api/v1/rules", `{"domainName":"a.com","appName":5,"recordFormats":[{"format":"flv","bogus":1}]}`)
	r.json(t, &eb)
	if r.status != 400 || len(eb.Errors) != 2 || eb.Errors[0].Field != "appName" || eb.Errors[1].Field != "recordFormats[0].bogus" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestRulesCRUD(t *testing.T) {
	e := newRulesEnv(t)

	// Create: the response is the normalized, stored rule.
	r := e.send("POST", "/api/v1/rules", `{"domainName":"Example.COM","appName":"live",
		"recordFormats":[{"format":"m3u8"},{"format":"flv","sliceDuration":30}]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var created catalog.StoredRule
	r.json(t, &created)
	if r.header.Get("Location") != "/api/v1/rules/"+created.ID {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	want := rules.Rule{DomainName: "example.com", AppName: "live", StreamName: "*", DelayTime: 180,
		RecordFormats: []rules.RecordFormat{
			{Format: rules.M3U8, ObjectPrefix: rules.DefaultObjectPrefix, SliceObjectPrefix: rules.DefaultSliceObjectPrefix, SliceDuration: 30, CycleDuration: 21600},
			{Format: rules.FLV, ObjectPrefix: rules.DefaultObjectPrefix, CycleDuration: 21600},
		}}
	if !equalRule(created.Rule, want) || created.Source != catalog.RuleSourceAPI || created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Fatalf("created %+v", created)
	}
	// The wire names are the config file's.
	var raw map[string]any
	r.json(t, &raw)
	for _, k := range []string{"id", "domainName", "appName", "streamName", "delayTime", "onDemand", "recordFormats", "source", "createdAt", "updatedAt"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("response lacks %q: %s", k, r.body)
		}
	}
	if set, n := e.set(); n != 1 || set.Len() != 1 {
		t.Fatalf("create published %d sets", n)
	}

	// Get returns the same; an upper-case id works too.
	r = e.send("GET", "/api/v1/rules/"+strings.ToUpper(created.ID), "")
	var got catalog.StoredRule
	r.json(t, &got)
	if r.status != 200 || got.ID != created.ID || !equalRule(got.Rule, want) || !got.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("get: %d %s", r.status, r.body)
	}

	// A GET response can be edited and sent back with PUT (read-only fields ignored).
	var edit map[string]any
	r.json(t, &edit)
	edit["delayTime"] = 60
	edit["source"] = "config"
	body, _ := json.Marshal(edit)
	r = e.send("PUT", "/api/v1/rules/"+created.ID, string(body))
	var updated catalog.StoredRule
	r.json(t, &updated)
	if r.status != 200 || updated.DelayTime != 60 || updated.Source != catalog.RuleSourceAPI || !updated.CreatedAt.Equal(created.CreatedAt) || updated.UpdatedAt.Before(created.UpdatedAt) {
		t.Fatalf("put round trip: %d %s", r.status, r.body)
	}

	// PUT is a full replace: fields left out go back to their defaults; the key may change.
	r = e.send("PUT", "/api/v1/rules/"+created.ID, `{"domainName":"example.com","appName":"live","streamName":"cam9","recordFormats":[{"format":"mp4"}]}`)
	r.json(t, &updated)
	if r.status != 200 || updated.DelayTime != 180 || updated.StreamName != "cam9" || len(updated.RecordFormats) != 1 || updated.ID != created.ID {
		t.Fatalf("put replace: %d %s", r.status, r.body)
	}
	if set, n := e.set(); n != 3 {
		t.Fatalf("published %d sets, want 3", n)
	} else if m, ok := set.Match("example.com", "live", "cam9"); !ok || m.RecordFormats[0].Format != rules.MP4 {
		t.Fatalf("set after put: %+v", m)
	} else if _, ok := set.Match("example.com", "live", "other"); ok {
		t.Fatal("old key still matches")
	}

	// List with paging and filters.
	for i := range 24 {
		d := "a.example.com"
		if i%4 == 0 {
			d = "b.example.com"
		}
		e.create(`{"domainName":"` + d + `","appName":"app` + string(rune('a'+i%3)) + `","streamName":"s` + string(rune('a'+i)) + `","recordFormats":[{"format":"flv"}]}`)
	}
	var list struct {
		Rules    []catalog.StoredRule `json:"rules"`
		Total    int                  `json:"total"`
		Page     int                  `json:"page"`
		PageSize int                  `json:"pageSize"`
	}
	r = e.send("GET", "/api/v1/rules", "")
	r.json(t, &list)
	if r.status != 200 || list.Total != 25 || len(list.Rules) != 20 || list.Page != 1 || list.PageSize != 20 || list.Rules[0].ID != created.ID {
		t.Fatalf("list defaults: %d total=%d n=%d page=%d size=%d", r.status, list.Total, len(list.Rules), list.Page, list.PageSize)
	}
	r = e.send("GET", "/api/v1/rules?page=3&pageSize=10", "")
	r.json(t, &list)
	if list.Total != 25 || len(list.Rules) != 5 || list.Page != 3 || list.PageSize != 10 {
		t.Fatalf("page 3: total=%d n=%d", list.Total, len(list.Rules))
	}
	r = e.send("GET", "/api/v1/rules?page=9", "")
	r.json(t, &list)
	if r.status != 200 || list.Total != 25 || list.Rules == nil || len(list.Rules) != 0 {
		t.Fatalf("past the end: %s", r.body)
	}
	r = e.send("GET", "/api/v1/rules?domain=B.example.com&app=appa", "")
	r.json(t, &list)
	if list.Total != 2 || len(list.Rules) != 2 { // i = 0, 12
		t.Fatalf("filter: %s", r.body)
	}
	for _, sr := range list.Rules {
		if sr.DomainName != "b.example.com" || sr.AppName != "appa" {
			t.Fatalf("filter returned %+v", sr)
		}
	}

	// Delete.
	r = e.send("DELETE", "/api/v1/rules/"+created.ID, "")
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r = e.send("GET", "/api/v1/rules/"+created.ID, ""); r.status != 404 {
		t.Fatalf("get deleted: %d", r.status)
	}
	if r = e.send("DELETE", "/api/v1/rules/"+created.ID, ""); r.status != 404 {
		t.Fatalf("delete twice: %d", r.status)
	}
	if set, _ := e.set(); set.Len() != 24 {
		t.Fatalf("set after delete has %d rules", set.Len())
	}
	// Other methods on the collection or an item are refused by the mux.
	if r = e.send("PATCH", "/api/v1/rules/"+created.ID, "{}"); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("PATCH: %d", r.status)
	}
}

// TestRulesPriorityThroughAPI: domain-, app- and stream-level rules created over HTTP
// are matched by priority in the set handed to OnChange, and changes apply to it.
func TestRulesPriorityThroughAPI(t *testing.T) {
	e := newRulesEnv(t)
	mk := func(domain, app, stream string, delay int) catalog.StoredRule {
		return e.create(`{"domainName":"` + domain + `","appName":"` + app + `","streamName":"` + stream +
			`","delayTime":` + jsonInt(delay) + `,"recordFormats":[{"format":"flv"}]}`)
	}
	catchAll := mk("*", "*", "*", 15)
	domainLevel := mk("example.com", "*", "*", 20)
	appLevel := mk("example.com", "live", "", 30)
	streamLevel := mk("example.com", "live", "cam1", 40)
	otherDomainApp := mk("*", "live", "*", 50)

	check := func(domain, app, stream string, want int) {
		t.Helper()
		set, _ := e.set()
		m, ok := set.Match(domain, app, stream)
		got := 0
		if ok {
			got = m.DelayTime
		}
		if got != want {
			t.Errorf("Match(%s, %s, %s) = rule with delayTime %d, want %d", domain, app, stream, got, want)
		}
	}
	check("EXAMPLE.com", "live", "cam1", 40) // stream level
	check("example.com", "live", "cam2", 30) // app level
	check("example.com", "vod", "cam1", 20)  // domain level
	check("other.com", "live", "x", 50)      // catch-all domain, app level
	check("other.com", "vod", "x", 15)       // catch-all

	// Deleting the stream-level rule lets the app-level one apply to cam1.
	if r := e.send("DELETE", "/api/v1/rules/"+streamLevel.ID, ""); r.status != 204 {
		t.Fatal(r.status)
	}
	check("example.com", "live", "cam1", 30)
	// Moving the app-level rule to another app: live falls back to the domain level.
	if r := e.send("PUT", "/api/v1/rules/"+appLevel.ID, `{"domainName":"example.com","appName":"vod","delayTime":35,"recordFormats":[{"format":"flv"}]}`); r.status != 200 {
		t.Fatal(r.status, string(r.body))
	}
	check("example.com", "live", "cam1", 20)
	check("example.com", "vod", "cam1", 35)
	// Without the domain-level and catch-all rules, example.com/live falls to "*"/live.
	for _, id := range []string{domainLevel.ID, catchAll.ID} {
		if r := e.send("DELETE", "/api/v1/rules/"+id, ""); r.status != 204 {
			t.Fatal(r.status)
		}
	}
	check("example.com", "live", "cam1", 50)
	check("example.com", "other", "cam1", 0)
	_ = otherDomainApp
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func equalRule(a, b rules.Rule) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
