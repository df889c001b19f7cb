package keytemplate

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func shanghai(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatalf("load zone: %v", err)
	}
	return loc
}

func TestRenderVariables(t *testing.T) {
	start := time.Unix(1488985786, 0) // 2017-03-08 15:09:46 UTC
	end := start.Add(6*time.Hour + 5*time.Second)
	base := Vars{
		AppName: "live", StreamName: "cam_1", Sequence: 7,
		Start: start, End: end, UnixTimestamp: 1488985786,
	}
	sh := base
	sh.Location = shanghai(t)

	tests := []struct {
		tmpl string
		v    Vars
		want string
	}{
		{"{AppName}", base, "live"},
		{"{StreamName}", base, "cam_1"},
		{"{Sequence}", base, "7"},
		{"x{Sequence}", Vars{}, "x0"},
		{"{StartTime}", base, "2017-03-08-15:09:46"},
		{"{EndTime}", base, "2017-03-08-21:09:51"},
		{"{EscapedStartTime}", base, "2017-03-08-15-09-46"},
		{"{EscapedEndTime}", base, "2017-03-08-21-09-51"},
		{"{UnixTimestamp}", base, "1488985786"},
		{"{UnixTimestamp}", Vars{UnixTimestamp: 42}, "0000000042"},
		{"{Date}", base, "2017-03-08"},
		{"{Hour}", base, "15"},
		{"{Minute}", base, "09"},
		{"{Second}", base, "46"},
		// Non-UTC zone: the callback sample of the reference.
		{"{StartTime}", sh, "2017-03-08-23:09:46"},
		{"{EscapedStartTime}", sh, "2017-03-08-23-09-46"},
		{"{EndTime}", sh, "2017-03-09-05:09:51"},
		{"{Date}/{Hour}", sh, "2017-03-08/23"},
		// Zone does not change the Unix timestamp.
		{"{UnixTimestamp}", sh, "1488985786"},
		// Defaults of the reference.
		{"record/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}", sh,
			"record/live/cam_1/2017-03-08-23-09-46_2017-03-09-05-09-51"},
		{"record/{AppName}/{StreamName}/{UnixTimestamp}_{Sequence}", sh,
			"record/live/cam_1/1488985786_7"},
		{"{AppName}/{StreamName}/{Sequence}_{StartTime}_{EndTime}", sh,
			"live/cam_1/7_2017-03-08-23:09:46_2017-03-09-05:09:51"},
		{"plain/literal", Vars{}, "plain/literal"},
	}
	for _, tt := range tests {
		got, err := Render(tt.tmpl, tt.v)
		if err != nil {
			t.Errorf("Render(%q): %v", tt.tmpl, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Render(%q) = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	ok := Vars{AppName: "a", StreamName: "s", Start: time.Unix(1e9, 0), End: time.Unix(1e9+1, 0), UnixTimestamp: 1e9}
	with := func(f func(*Vars)) Vars { v := ok; f(&v); return v }
	tests := []struct {
		tmpl string
		v    Vars
		want string // substring of the error
		is   error
	}{
		{"{AppName", ok, `unclosed "{" at byte 0`, ErrSyntax},
		{"a/{App{Name}}", ok, `unclosed "{" at byte 2`, ErrSyntax},
		{"a}b", ok, `unmatched "}" at byte 1`, ErrSyntax},
		{"a/{}", ok, `empty variable`, ErrSyntax},
		{"{Foo}/{Bar}/{Foo}", ok, `unknown variable: {Foo}, {Bar}`, ErrUnknownVariable},
		{"{appname}", ok, `{appname} (did you mean {AppName}?)`, ErrUnknownVariable},
		{"{AppName}", with(func(v *Vars) { v.AppName = "" }), `{AppName}: value is empty`, nil},
		{"{StreamName}", with(func(v *Vars) { v.StreamName = "../x" }), `contains a path separator`, nil},
		{"{StreamName}", with(func(v *Vars) { v.StreamName = ".." }), `is not allowed`, nil},
		{"{Sequence}", with(func(v *Vars) { v.Sequence = -1 }), `{Sequence}: -1 is negative`, nil},
		{"{AppName}\x90", with(func(v *Vars) { v.AppName = "\xd3" }), `template is not valid UTF-8`, ErrSyntax},
		{"x/{AppName}", with(func(v *Vars) { v.AppName = "\xd3" }), `{AppName}: value "\xd3" is not valid UTF-8`, nil},
		{"x/{StreamName}", with(func(v *Vars) { v.StreamName = "a\x00" }), `contains control character U+0000`, nil},
		{"{UnixTimestamp}", with(func(v *Vars) { v.UnixTimestamp = 0 }), `not a positive Unix time`, nil},
		{"{StartTime}", with(func(v *Vars) { v.Start = time.Time{} }), `{StartTime}: Start time is not set`, nil},
		{"{EscapedEndTime}", with(func(v *Vars) { v.End = time.Time{} }), `End time is not set`, nil},
		{"{Hour}", with(func(v *Vars) { v.Start = time.Time{} }), `Start time is not set`, nil},
		{"/{AppName}", ok, `must not start with "/"`, ErrUnsafeKey},
		{"../{AppName}", ok, `path element ".." is not allowed`, ErrUnsafeKey},
		{"{AppName}/", ok, `empty`, ErrUnsafeKey},
		{"{AppName}" + strings.Repeat("x", 255), ok, `longer than 255`, ErrUnsafeKey},
	}
	for _, tt := range tests {
		_, err := Render(tt.tmpl, tt.v)
		if err == nil {
			t.Errorf("Render(%q): no error, want %q", tt.tmpl, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Render(%q) error %q, want it to contain %q", tt.tmpl, err, tt.want)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Render(%q) error %q is not %v", tt.tmpl, err, tt.is)
		}
	}
}

func TestCheck(t *testing.T) {
	vars, err := Check("record/{AppName}/{StreamName}/{Sequence}_{StartTime}_{EndTime}_{Sequence}")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"AppName", "StreamName", "Sequence", "StartTime", "EndTime"}
	if !reflect.DeepEqual(vars, want) {
		t.Errorf("vars = %v, want %v", vars, want)
	}
	if vars, err := Check("no-vars"); err != nil || len(vars) != 0 {
		t.Errorf("Check(no-vars) = %v, %v", vars, err)
	}

	bad := map[string]string{
		"a/{x":                `unclosed`,
		"{Nope}":              `unknown variable: {Nope}`,
		"/abs/{AppName}":      `must not start with "/"`,
		"a/../{AppName}":      `".." is not allowed`,
		"a/./{AppName}":       `"." is not allowed`,
		"a//{AppName}":        `empty`,
		"a\\{AppName}":        `backslash`,
		"a/{AppName}\x00":     `control character U+0000`,
		"a/{AppName}\n":       `control character U+000A`,
		"a/{AppName}/":        `empty`,
		"":                    `empty key`,
		"bad\xffutf8":         `template syntax: template is not valid UTF-8`,
		"{AppName}\u0085next": `control character U+0085`,
	}
	for tmpl, want := range bad {
		_, err := Check(tmpl)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q) = %v, want error containing %q", tmpl, err, want)
		}
	}
}

func TestCleanKey(t *testing.T) {
	good := []string{
		"a", "a/b", "record/live/s/2017-03-08-23:09:46_x.m3u8", "a..b/..c/c..", ".hidden/x", "sp ace/ü",
		strings.Repeat("x", 255) + "/" + strings.Repeat("y", 255),
	}
	for _, k := range good {
		got, err := CleanKey(k)
		if err != nil || got != k {
			t.Errorf("CleanKey(%q) = %q, %v; want it unchanged", k, got, err)
		}
	}
	bad := map[string]string{
		"":                              "empty key",
		"../etc/passwd":                 `".." is not allowed`,
		"a/../../b":                     `".." is not allowed`,
		"..":                            `".." is not allowed`,
		"/abs":                          `must not start with "/"`,
		"/":                             `must not start with "/"`,
		"a//b":                          "element 1 is empty",
		"a/./b":                         `"." is not allowed`,
		".":                             `"." is not allowed`,
		"a/b/":                          "element 2 is empty",
		`a\b`:                           "backslash",
		`..\..\x`:                       "backslash",
		"a\x00b":                        "U+0000",
		"a\x1fb":                        "U+001F",
		"a\x7fb":                        "U+007F",
		"a\xc0\xafb":                    "UTF-8",
		strings.Repeat("x", 256):        "longer than 255",
		strings.Repeat("x/", 513):       "longer than 1024",
		"a/" + strings.Repeat("é", 128): "longer than 255",
	}
	for k, want := range bad {
		_, err := CleanKey(k)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrUnsafeKey) {
			t.Errorf("CleanKey(%q) = %v, want ErrUnsafeKey containing %q", k, err, want)
		}
	}
}

// checkSafe asserts the invariants of a key that CleanKey accepted.
func checkSafe(t *testing.T, key string) {
	t.Helper()
	again, err := CleanKey(key)
	if err != nil || again != key {
		t.Fatalf("re-cleaning %q = %q, %v; want identity", key, again, err)
	}
	if strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\\\x00") || len(key) > MaxKeyLen {
		t.Fatalf("unsafe key %q accepted", key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			t.Fatalf("unsafe element %q in accepted key %q", el, key)
		}
	}
}

func FuzzCleanKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "/abs", "a//b", "a/./b", `a\b`, "a\x00b", "a/b/", ".", "..", "x:y/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, err := CleanKey(key)
		if err != nil {
			return
		}
		if got != key {
			t.Fatalf("CleanKey(%q) = %q, want the input", key, got)
		}
		checkSafe(t, got)
	})
}

func FuzzRender(f *testing.F) {
	f.Add("record/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}", "live", "s", 0, int64(1488985786))
	f.Add("record/{AppName}/{StreamName}/{UnixTimestamp}_{Sequence}", "a", "b", 3, int64(1))
	f.Add("{AppName}/../{StreamName}", "..", "/", -1, int64(0))
	f.Add("{Date}/{Hour}{Minute}{Second}/{{}}", "a-b", "c_d", 9, int64(-5))
	f.Fuzz(func(t *testing.T, tmpl, app, stream string, seq int, ts int64) {
		v := Vars{
			AppName: app, StreamName: stream, Sequence: seq, UnixTimestamp: ts,
			Start: time.Unix(ts, 0), End: time.Unix(ts, 0).Add(time.Hour), Location: time.UTC,
		}
		key, err := Render(tmpl, v)
		if err != nil {
			return
		}
		checkSafe(t, key)
		// A template that renders must also pass Check, unless only the lengths differ.
		if _, err := Check(tmpl); err != nil && !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("Render(%q) ok but Check fails: %v", tmpl, err)
		}
	})
}
