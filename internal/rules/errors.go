package rules

import (
	"strconv"
	"strings"
)

// ValidationError is one problem with one field. Field is a machine-readable path in the
// lowerCamelCase names of the configuration and the JSON API, e.g.
// "recordFormats[1].sliceDuration" or, from a config file, "rules[2].appName". Msg says
// what is wrong and what is allowed. Line is the line in a config file, 0 if unknown.
type ValidationError struct {
	Field string `json:"field"`
	Msg   string `json:"message"`
	Line  int    `json:"line,omitempty"`
}

// Error returns "field: msg", preceded by "line N: " when the line is known.
func (e *ValidationError) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Line > 0 {
		s = "line " + strconv.Itoa(e.Line) + ": " + s
	}
	return s
}

// ValidationErrors is every problem found in one validation. It is returned as an error
// only when it is non-empty. errors.As(err, &target) with target *ValidationError finds
// the first one; use errors.As with a ValidationErrors target to get them all.
type ValidationErrors []*ValidationError

// Error joins the problems with newlines, like errors.Join.
func (es ValidationErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (es ValidationErrors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// Prefix returns copies of the errors with prefix put in front of each Field: "rules[2]"
// + "appName" gives "rules[2].appName", and "rules" + "[2].appName" gives
// "rules[2].appName".
func (es ValidationErrors) Prefix(prefix string) ValidationErrors {
	out := make(ValidationErrors, len(es))
	for i, e := range es {
		c := *e
		c.Field = JoinField(prefix, e.Field)
		out[i] = &c
	}
	return out
}

// JoinField joins two field paths with "." unless the second starts with an index.
func JoinField(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

// err returns es as an error, or a true nil when there is nothing to report.
func (es ValidationErrors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// add appends a problem.
func (es *ValidationErrors) add(field, msg string) {
	*es = append(*es, &ValidationError{Field: field, Msg: msg})
}
