package api

// Recording rules over JSON: /api/v1/rules. Field names are the config file's and the
// rules package's (lowerCamelCase). Changes go through ruledb.Store, which stores them in
// the catalog and hands the new rule set to the recorder (from the next push on).
//
// Request bodies are checked strictly before any rule logic runs: Content-Type must be
// application/json (415), at most 1 MiB (413), one JSON object, no unknown fields, the
// right JSON type for every field, and the required fields present. Every problem found
// is reported with its field path, e.g. "recordFormats[1].sliceDuration"; then the rule
// is normalized and validated (rules.Rule.Validate, whose messages give allowed ranges).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/ruledb"
	"github.com/livrec/livrec/internal/rules"
)

// Limits of the rules API.
const (
	maxRuleBody     = 1 << 20 // bytes of a request body
	defaultPageSize = 20
	maxPageSize     = 100
	maxPage         = 1_000_000_000
)

// registerRules adds the /api/v1/rules routes. Changes are applied to s.Manager (if set)
// through Manager.SetRules.
func (s *Server) registerRules(mux *http.ServeMux) {
	var onChange func(*rules.Set)
	if s.Manager != nil {
		onChange = s.Manager.SetRules
	}
	(&ruleAPI{store: ruledb.New(s.Catalog, onChange, s.Logger).Endpoints(s.S3Endpoints)}).register(mux)
}

// ruleAPI serves the rules routes from one store.
type ruleAPI struct {
	store *ruledb.Store
}

func (a *ruleAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/rules", a.list)
	mux.HandleFunc("POST /api/v1/rules", a.create)
	mux.HandleFunc("GET /api/v1/rules/{id}", a.get)
	mux.HandleFunc("PUT /api/v1/rules/{id}", a.update)
	mux.HandleFunc("DELETE /api/v1/rules/{id}", a.delete)
}

// ruleInput is the body of POST and PUT: a rule, plus the read-only fields of a stored
// rule so that a GET response can be edited and sent back. source, createdAt and
// updatedAt are ignored; id must be absent (POST) or equal to the path's id (PUT).
type ruleInput struct {
	ID string `json:"id"`
	rules.Rule
	Source    string `json:"source"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
}

// ruleList is the body of GET /api/v1/rules.
type ruleList struct {
	Rules    []catalog.StoredRule `json:"rules"`
	Total    int                  `json:"total"`
	Page     int                  `json:"page"`
	PageSize int                  `json:"pageSize"`
}

// problemsBody is an error with several problems.
type problemsBody struct {
	Error  string                   `json:"error"`
	Errors []*rules.ValidationError `json:"errors"`
}

// writeProblems writes one problem as {"error", "field"} and several as
// {"error", "errors": [{"field", "message"}...]}.
func writeProblems(w http.ResponseWriter, status int, es rules.ValidationErrors) {
	if len(es) == 1 {
		writeError(w, status, es[0].Field, es[0].Error())
		return
	}
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	writeJSON(w, status, problemsBody{
		Error:  fmt.Sprintf("%d problems: %s", len(es), strings.Join(lines, "; ")),
		Errors: es,
	})
}

func (a *ruleAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, pageSize := 1, defaultPageSize
	for _, p := range []struct {
		name     string
		dst      *int
		min, max int
	}{{"page", &page, 1, maxPage}, {"pageSize", &pageSize, 1, maxPageSize}} {
		if !q.Has(p.name) {
			continue
		}
		v := q.Get(p.name)
		n, err := strconv.Atoi(v)
		if err != nil || n < p.min || n > p.max {
			writeError(w, http.StatusBadRequest, p.name,
				fmt.Sprintf("%s: want an integer %d–%d, got %q", p.name, p.min, p.max, v))
			return
		}
		*p.dst = n
	}
	rs, total, err := a.store.List(r.Context(), catalog.RuleQuery{
		Domain: q.Get("domain"), App: q.Get("app"),
		Offset: (page - 1) * pageSize, Limit: pageSize,
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ruleList{Rules: rs, Total: total, Page: page, PageSize: pageSize})
}

func (a *ruleAPI) get(w http.ResponseWriter, r *http.Request) {
	id, ok := ruleID(w, r)
	if !ok {
		return
	}
	sr, err := a.store.Get(r.Context(), id)
	if err != nil {
		writeStoreError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, sr)
}

func (a *ruleAPI) create(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeRule(w, r)
	if !ok {
		return
	}
	if in.ID != "" {
		writeError(w, http.StatusBadRequest, "id", "id: is assigned by the server; leave it out")
		return
	}
	sr, err := a.store.Create(r.Context(), &in.Rule)
	if err != nil {
		writeStoreError(w, "", err)
		return
	}
	w.Header().Set("Location", "/api/v1/rules/"+sr.ID)
	writeJSON(w, http.StatusCreated, sr)
}

func (a *ruleAPI) update(w http.ResponseWriter, r *http.Request) {
	id, ok := ruleID(w, r)
	if !ok {
		return
	}
	in, ok := decodeRule(w, r)
	if !ok {
		return
	}
	if in.ID != "" && in.ID != id {
		writeError(w, http.StatusBadRequest, "id", fmt.Sprintf("id: %q does not match the id in the path (%s); leave it out or send the same", in.ID, id))
		return
	}
	sr, err := a.store.Update(r.Context(), id, &in.Rule)
	if err != nil {
		writeStoreError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, sr)
}

func (a *ruleAPI) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := ruleID(w, r)
	if !ok {
		return
	}
	if err := a.store.Delete(r.Context(), id); err != nil {
		writeStoreError(w, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ruleID returns the path's rule id, or writes 404 for one that cannot exist.
func ruleID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if len(id) != 36 || uuid.Validate(id) != nil {
		writeError(w, http.StatusNotFound, "id", fmt.Sprintf("id: no rule with id %q (ids are UUIDs)", id))
		return "", false
	}
	return strings.ToLower(id), true
}

// writeStoreError maps an error of ruledb.Store to a response.
func writeStoreError(w http.ResponseWriter, id string, err error) {
	var ves rules.ValidationErrors
	var exists *catalog.RuleExistsError
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		writeError(w, http.StatusNotFound, "id", fmt.Sprintf("id: no rule with id %q", id))
	case errors.As(err, &exists):
		writeError(w, http.StatusConflict, "streamName", err.Error())
	case errors.As(err, &ves):
		writeProblems(w, http.StatusBadRequest, ves)
	default:
		writeError(w, http.StatusInternalServerError, "", err.Error())
	}
}

// decodeRule reads and checks a rule body; on a problem it writes the response.
func decodeRule(w http.ResponseWriter, r *http.Request) (*ruleInput, bool) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "",
			fmt.Sprintf("Content-Type must be application/json, got %q", ct))
		return nil, false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		writeError(w, http.StatusUnsupportedMediaType, "",
			fmt.Sprintf("Content-Type charset must be utf-8, got %q", cs))
		return nil, false
	}
	tooLarge := func() (*ruleInput, bool) {
		writeError(w, http.StatusRequestEntityTooLarge, "",
			fmt.Sprintf("request body is larger than %d bytes (1 MiB)", maxRuleBody))
		return nil, false
	}
	if r.ContentLength > maxRuleBody {
		return tooLarge()
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRuleBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		writeError(w, http.StatusBadRequest, "", "reading the request body: "+err.Error())
		return nil, false
	}

	// First pass: generic JSON, to report every unknown field, type mismatch and missing
	// field with its full path (encoding/json stops at the first and drops indices).
	if len(bytes.TrimSpace(data)) == 0 {
		writeError(w, http.StatusBadRequest, "", "request body is empty; want a JSON object (a rule)")
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		writeError(w, http.StatusBadRequest, "", jsonSyntaxMessage(err, data))
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "",
			fmt.Sprintf("malformed JSON: unexpected data after the object at byte %d", dec.InputOffset()))
		return nil, false
	}
	var es rules.ValidationErrors
	checkJSON(doc, reflect.TypeFor[ruleInput](), "", &es)
	if len(es) > 0 {
		writeProblems(w, http.StatusBadRequest, es)
		return nil, false
	}

	// Second pass: the typed decode, strict as a backstop.
	in := &ruleInput{}
	strict := json.NewDecoder(bytes.NewReader(data))
	strict.DisallowUnknownFields()
	if err := strict.Decode(in); err != nil {
		field, msg := decodeErrorField(err)
		writeError(w, http.StatusBadRequest, field, msg)
		return nil, false
	}
	return in, true
}

// jsonSyntaxMessage describes a JSON syntax error with its position.
func jsonSyntaxMessage(err error, data []byte) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(data, se.Offset)
		return fmt.Sprintf("malformed JSON at line %d, column %d (byte %d): %v", line, col, se.Offset, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "malformed JSON: unexpected end of the body"
	}
	return "malformed JSON: " + err.Error()
}

// position turns a byte offset (as in json.SyntaxError: just after the bad byte) into a
// 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	off = min(max(off-1, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// decodeErrorField maps an encoding/json error to a field and message.
func decodeErrorField(err error) (field, msg string) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field, fmt.Sprintf("%s: want %s, got JSON %s", te.Field, typeName(te.Type), te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return name, fmt.Sprintf("%s: unknown field", name)
	}
	return "", "malformed JSON: " + err.Error()
}

// required lists the fields that must be present (not null) per type.
var required = map[reflect.Type][]string{
	reflect.TypeFor[ruleInput]():          {"domainName", "appName", "recordFormats"},
	reflect.TypeFor[rules.RecordFormat](): {"format"},
}

// checkJSON walks a generic JSON value (decoded with UseNumber) alongside the Go type t
// and reports unknown fields, wrong JSON types and missing required fields. JSON null
// counts as absent.
func checkJSON(v any, t reflect.Type, path string, es *rules.ValidationErrors) {
	add := func(field, msg string) { *es = append(*es, &rules.ValidationError{Field: field, Msg: msg}) }
	if v == nil {
		if path == "" {
			add("", "want a JSON object (a rule), got null")
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		if str, ok := v.(string); !ok {
			add(path, "want an RFC 3339 time string, got "+jsonKind(v))
		} else if _, err := time.Parse(time.RFC3339, str); err != nil {
			add(path, fmt.Sprintf("want an RFC 3339 time such as \"2026-11-25T10:00:00Z\", got %q", str))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			if path == "" {
				add("", "want a JSON object (a rule), got "+jsonKind(v))
			} else {
				add(path, "want an object, got "+jsonKind(v))
			}
			return
		}
		fields := jsonFields(t)
		suggested := map[string]bool{}
		for _, name := range slices.Sorted(maps.Keys(obj)) { // stable messages
			ft, known := fields[name]
			if !known {
				msg := "unknown field"
				if s := suggestField(name, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
					suggested[s] = true
				}
				add(rules.JoinField(path, name), msg)
				continue
			}
			checkJSON(obj[name], ft, rules.JoinField(path, name), es)
		}
		for _, name := range required[t] {
			// A misspelt required field is reported once, as unknown with the suggestion.
			if obj[name] == nil && !suggested[name] {
				add(rules.JoinField(path, name), "is required")
			}
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			add(path, "want an array, got "+jsonKind(v))
			return
		}
		for i, item := range arr {
			p := path + "[" + strconv.Itoa(i) + "]"
			if item == nil {
				add(p, "want "+typeName(t.Elem())+", got null")
				continue
			}
			checkJSON(item, t.Elem(), p, es)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			add(path, "want a string, got "+jsonKind(v))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := v.(json.Number)
		if !ok {
			add(path, "want an integer, got "+jsonKind(v))
			return
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
			if _, ferr := n.Float64(); ferr == nil && !strings.ContainsAny(n.String(), ".eE") {
				add(path, "want an integer, got "+n.String()+" (too large)")
			} else {
				add(path, "want an integer, got "+jsonKind(v))
			}
		}
	}
}

// jsonFields maps JSON names to field types, flattening embedded structs.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for n, ft := range jsonFields(f.Type) {
				fields[n] = ft
			}
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// suggestField finds a known field for a misspelt one: same ignoring case, "_" and "-",
// a plural "s", or the name without its "Name" suffix (domain → domainName).
func suggestField(key string, fields map[string]reflect.Type) string {
	squash := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
	}
	k := squash(key)
	for name := range fields {
		n := squash(name)
		if n == k || n == k+"s" || n+"s" == k || n == k+"name" {
			return name
		}
	}
	return ""
}

// jsonKind describes a generic JSON value for an error message.
func jsonKind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case json.Number:
		return "number " + x.String()
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return "string " + strconv.Quote(x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

var timeType = reflect.TypeFor[time.Time]()

// typeName names a Go type the way the API documents it.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "an RFC 3339 time string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	}
	return t.String()
}
