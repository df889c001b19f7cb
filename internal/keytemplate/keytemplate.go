// Package keytemplate turns object-key templates such as
// "record/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}" into storage keys,
// and guarantees that every key it returns is a clean relative path that cannot escape
// the storage root.
//
// The variables follow the cloud recording API (reference §6):
//
//	{AppName} {StreamName}   the stream's app and stream name
//	{Sequence}               index of the file in its task, or of the segment in its file
//	{StartTime} {EndTime}    wall-clock time in Vars.Location, "2006-01-02-15:04:05"
//	{EscapedStartTime}       the same without ':', "2006-01-02-15-04-05"
//	{EscapedEndTime}
//	{UnixTimestamp}          Unix seconds of the segment start, zero-padded to 10 digits
//	{Date} {Hour} {Minute} {Second}   parts of Vars.Start: "2006-01-02", "15", "04", "05"
//
// Variable names are case-sensitive. This package knows nothing about which variables a
// given kind of prefix may use or must contain; that policy lives in internal/rules.
package keytemplate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Variable names, without braces.
const (
	AppName          = "AppName"
	StreamName       = "StreamName"
	Sequence         = "Sequence"
	StartTime        = "StartTime"
	EndTime          = "EndTime"
	EscapedStartTime = "EscapedStartTime"
	EscapedEndTime   = "EscapedEndTime"
	UnixTimestamp    = "UnixTimestamp"
	Date             = "Date"
	Hour             = "Hour"
	Minute           = "Minute"
	Second           = "Second"
)

// Variables lists every known variable name in documentation order.
var Variables = []string{
	AppName, StreamName, Sequence, StartTime, EndTime, EscapedStartTime, EscapedEndTime,
	UnixTimestamp, Date, Hour, Minute, Second,
}

// Time layouts used for the time variables.
const (
	TimeLayout        = "2006-01-02-15:04:05"
	EscapedTimeLayout = "2006-01-02-15-04-05"
	DateLayout        = "2006-01-02"
)

// Key limits enforced by CleanKey.
const (
	MaxKeyLen     = 1024 // bytes in a whole key
	MaxElementLen = 255  // bytes in one path element
)

// ErrSyntax is wrapped by errors about braces: an unclosed "{", a stray "}", an empty or
// nested variable.
var ErrSyntax = errors.New("template syntax")

// ErrUnknownVariable is wrapped by errors that name variables this package does not know.
var ErrUnknownVariable = errors.New("unknown variable")

// ErrUnsafeKey is wrapped by every CleanKey error.
var ErrUnsafeKey = errors.New("unsafe key")

// Vars are the values substituted into a template.
type Vars struct {
	AppName    string
	StreamName string
	// Sequence is the file's index in its task (objectPrefix) or the segment's index in
	// its file (sliceObjectPrefix). Rendered in decimal without padding.
	Sequence int
	// Start and End are the wall-clock start and end of the file. {Date}, {Hour},
	// {Minute} and {Second} are taken from Start.
	Start, End time.Time
	// UnixTimestamp is the segment start in Unix seconds.
	UnixTimestamp int64
	// Location is the zone the time variables are shown in; nil means UTC.
	Location *time.Location
}

// token is one piece of a parsed template: a literal or a variable name.
type token struct {
	text  string
	isVar bool
}

// known reports whether name is a variable this package can render.
func known(name string) bool {
	for _, v := range Variables {
		if v == name {
			return true
		}
	}
	return false
}

// parse splits tmpl into literals and variables. It checks brace syntax only.
func parse(tmpl string) ([]token, error) {
	if !utf8.ValidString(tmpl) {
		// Checked on the template itself: a substituted value must not be able to
		// complete a broken sequence in a literal.
		return nil, fmt.Errorf("%w: template is not valid UTF-8", ErrSyntax)
	}
	var toks []token
	lit := 0 // start of the current literal
	for i := 0; i < len(tmpl); i++ {
		switch tmpl[i] {
		case '}':
			return nil, fmt.Errorf("%w: unmatched \"}\" at byte %d", ErrSyntax, i)
		case '{':
			end := strings.IndexAny(tmpl[i+1:], "{}")
			if end < 0 || tmpl[i+1+end] == '{' {
				return nil, fmt.Errorf("%w: unclosed \"{\" at byte %d", ErrSyntax, i)
			}
			name := tmpl[i+1 : i+1+end]
			if name == "" {
				return nil, fmt.Errorf("%w: empty variable \"{}\" at byte %d", ErrSyntax, i)
			}
			if i > lit {
				toks = append(toks, token{text: tmpl[lit:i]})
			}
			toks = append(toks, token{text: name, isVar: true})
			i += end + 1
			lit = i + 1
		}
	}
	if lit < len(tmpl) {
		toks = append(toks, token{text: tmpl[lit:]})
	}
	return toks, nil
}

// unknownError builds the error for the unknown variables in toks, or nil.
func unknownError(toks []token) error {
	var bad []string
	for _, t := range toks {
		if t.isVar && !known(t.text) && !contains(bad, t.text) {
			bad = append(bad, t.text)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	parts := make([]string, len(bad))
	for i, b := range bad {
		parts[i] = "{" + b + "}"
		if s := suggest(b); s != "" {
			parts[i] += " (did you mean {" + s + "}?)"
		}
	}
	return fmt.Errorf("%w: %s", ErrUnknownVariable, strings.Join(parts, ", "))
}

// suggest returns the known variable that differs from name only in case, or "".
func suggest(name string) string {
	for _, v := range Variables {
		if strings.EqualFold(v, name) {
			return v
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sampleVars are used by Check to render a template and check the resulting path.
var sampleVars = Vars{
	AppName:       "app",
	StreamName:    "stream",
	Sequence:      0,
	Start:         time.Date(2017, 3, 8, 15, 9, 46, 0, time.UTC),
	End:           time.Date(2017, 3, 8, 21, 9, 46, 0, time.UTC),
	UnixTimestamp: 1488985786,
	Location:      time.UTC,
}

// Check validates a template without rendering it: brace syntax, unknown variables, and
// that the literal parts form a safe relative path (no leading "/", no empty, "." or ".."
// element, no backslash or control character). It returns the distinct variables used, in
// order of first appearance.
//
// Lengths are checked with short sample values, so a template that passes Check can still
// fail in Render when long names make an element or the key too long.
func Check(tmpl string) (vars []string, err error) {
	toks, err := parse(tmpl)
	if err != nil {
		return nil, err
	}
	if err := unknownError(toks); err != nil {
		return nil, err
	}
	for _, t := range toks {
		if t.isVar && !contains(vars, t.text) {
			vars = append(vars, t.text)
		}
	}
	s, err := substitute(toks, sampleVars)
	if err != nil {
		return nil, err
	}
	if _, err := CleanKey(s); err != nil {
		return nil, err
	}
	return vars, nil
}

// Render substitutes v into tmpl and returns a clean key (see CleanKey). It fails on a
// syntax error, an unknown variable, a value the template needs that is missing (empty
// name, zero time or timestamp, negative sequence), a name containing "/", or a result
// that CleanKey rejects.
func Render(tmpl string, v Vars) (string, error) {
	toks, err := parse(tmpl)
	if err != nil {
		return "", err
	}
	if err := unknownError(toks); err != nil {
		return "", err
	}
	s, err := substitute(toks, v)
	if err != nil {
		return "", err
	}
	key, err := CleanKey(s)
	if err != nil {
		return "", fmt.Errorf("rendered key %q: %w", s, err)
	}
	return key, nil
}

// substitute puts v into parsed, known-variable tokens. The result is not yet checked.
func substitute(toks []token, v Vars) (string, error) {
	loc := v.Location
	if loc == nil {
		loc = time.UTC
	}
	var b strings.Builder
	for _, t := range toks {
		if !t.isVar {
			b.WriteString(t.text)
			continue
		}
		s, err := value(t.text, v, loc)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// value renders one known variable.
func value(name string, v Vars, loc *time.Location) (string, error) {
	switch name {
	case AppName:
		return nameValue(name, v.AppName)
	case StreamName:
		return nameValue(name, v.StreamName)
	case Sequence:
		if v.Sequence < 0 {
			return "", fmt.Errorf("{Sequence}: %d is negative", v.Sequence)
		}
		return strconv.Itoa(v.Sequence), nil
	case UnixTimestamp:
		if v.UnixTimestamp <= 0 {
			return "", fmt.Errorf("{UnixTimestamp}: %d is not a positive Unix time", v.UnixTimestamp)
		}
		return fmt.Sprintf("%010d", v.UnixTimestamp), nil
	}
	// Time variables.
	t := v.Start
	if name == EndTime || name == EscapedEndTime {
		t = v.End
	}
	if t.IsZero() {
		field := "Start"
		if name == EndTime || name == EscapedEndTime {
			field = "End"
		}
		return "", fmt.Errorf("{%s}: %s time is not set", name, field)
	}
	t = t.In(loc)
	switch name {
	case StartTime, EndTime:
		return t.Format(TimeLayout), nil
	case EscapedStartTime, EscapedEndTime:
		return t.Format(EscapedTimeLayout), nil
	case Date:
		return t.Format(DateLayout), nil
	case Hour:
		return t.Format("15"), nil
	case Minute:
		return t.Format("04"), nil
	case Second:
		return t.Format("05"), nil
	}
	// Unreachable: callers only pass known variables.
	return "", fmt.Errorf("%w: {%s}", ErrUnknownVariable, name)
}

// nameValue checks a substituted name. Names are validated on ingest already; this is a
// second line of defence so that a name can never add path elements.
func nameValue(name, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("{%s}: value is empty", name)
	}
	if strings.ContainsAny(s, "/\\") {
		return "", fmt.Errorf("{%s}: value %q contains a path separator", name, s)
	}
	if s == "." || s == ".." {
		return "", fmt.Errorf("{%s}: value %q is not allowed", name, s)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("{%s}: value %q is not valid UTF-8", name, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("{%s}: value %q contains control character %U", name, s, r)
		}
	}
	return s, nil
}

// CleanKey checks that key is a safe storage key and returns it. A safe key is a
// relative, slash-separated path of valid UTF-8 with:
//   - no leading "/", no empty element (so no "//" and no trailing "/"),
//   - no "." or ".." element,
//   - no backslash and no control character (C0, DEL, C1),
//   - no element longer than MaxElementLen bytes, at most MaxKeyLen bytes in all.
//
// CleanKey rejects rather than repairs: a key that is not already clean is a bug or an
// attack, and silently rewriting it would make two templates write the same key. On
// success the returned key equals the input, so CleanKey(CleanKey(k)) == CleanKey(k).
// ':' is allowed (legal on Linux file systems and in S3 keys).
func CleanKey(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty key", ErrUnsafeKey)
	}
	if len(key) > MaxKeyLen {
		return "", fmt.Errorf("%w: %d bytes is longer than %d", ErrUnsafeKey, len(key), MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrUnsafeKey)
	}
	for i, r := range key {
		if r == '\\' {
			return "", fmt.Errorf("%w: backslash at byte %d", ErrUnsafeKey, i)
		}
		if unicode.IsControl(r) {
			return "", fmt.Errorf("%w: control character %U at byte %d", ErrUnsafeKey, r, i)
		}
	}
	if key[0] == '/' {
		return "", fmt.Errorf("%w: must not start with \"/\"", ErrUnsafeKey)
	}
	for i, el := range strings.Split(key, "/") {
		switch {
		case el == "":
			return "", fmt.Errorf("%w: path element %d is empty (doubled or trailing \"/\")", ErrUnsafeKey, i)
		case el == "." || el == "..":
			return "", fmt.Errorf("%w: path element %q is not allowed", ErrUnsafeKey, el)
		case len(el) > MaxElementLen:
			return "", fmt.Errorf("%w: path element %d is %d bytes, longer than %d", ErrUnsafeKey, i, len(el), MaxElementLen)
		}
	}
	return key, nil
}
