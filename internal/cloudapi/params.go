package cloudapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// params are the merged query and form parameters.
type params map[string][]string

// get returns the first value of name, "" if absent.
func (p params) get(name string) string {
	if vs := p[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// has reports whether name was sent (even empty).
func (p params) has(name string) bool { _, ok := p[name]; return ok }

// required returns a non-empty value or MissingParameter.
func (p params) required(name string) (string, error) {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return "", missing(name)
	}
	return v, nil
}

// intIn parses an optional integer in [lo, hi]; def if absent or empty.
func (p params) intIn(name string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalid(name, fmt.Sprintf("%q is not an integer", v))
	}
	if n < lo || n > hi {
		return 0, invalid(name, fmt.Sprintf("%d is out of range (allowed %d–%d)", n, lo, hi))
	}
	return n, nil
}

// optInt parses an optional integer; ok is false when absent or empty.
func (p params) optInt(name string) (n int, ok bool, err error) {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return 0, false, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil {
		return 0, false, invalid(name, fmt.Sprintf("%q is not an integer", v))
	}
	return n, true, nil
}

// optBool parses an optional true/false; ok is false when absent or empty.
func (p params) optBool(name string) (b, ok bool, err error) {
	switch v := strings.TrimSpace(p.get(name)); strings.ToLower(v) {
	case "":
		return false, false, nil
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	default:
		return false, false, invalid(name, fmt.Sprintf("%q is not true or false", v))
	}
}

// parseTime parses the cloud's time format (yyyy-MM-ddTHH:mm:ssZ; any RFC 3339 time is
// also accepted).
func parseTime(name, v string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, v)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, v); err != nil {
			return time.Time{}, invalid(name, fmt.Sprintf("%q is not a time in the format yyyy-MM-ddTHH:mm:ssZ", v))
		}
	}
	return t.UTC(), nil
}

// optTime parses an optional time; zero when absent or empty.
func (p params) optTime(name string) (time.Time, error) {
	v := strings.TrimSpace(p.get(name))
	if v == "" {
		return time.Time{}, nil
	}
	return parseTime(name, v)
}

// requiredTime parses a required time.
func (p params) requiredTime(name string) (time.Time, error) {
	v, err := p.required(name)
	if err != nil {
		return time.Time{}, err
	}
	return parseTime(name, v)
}

// item is one element of a flattened list: Name.N or Name.N.Field.
type item struct {
	N      int               // the 1-based index as sent
	Value  string            // Name.N
	Fields map[string]string // Name.N.Field
}

// list returns the elements of the flattened list name, ordered by N (which may be
// sparse). A malformed index is InvalidParameter.
func (p params) list(name string) ([]item, error) {
	byN := map[int]*item{}
	for k, vs := range p {
		rest, ok := strings.CutPrefix(k, name+".")
		if !ok || len(vs) == 0 {
			continue
		}
		idx, field, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(idx)
		if err != nil || n < 1 || n > 1000 || strconv.Itoa(n) != idx {
			return nil, invalid(k, "list indexes are integers from 1 (Name.N or Name.N.Field)")
		}
		it := byN[n]
		if it == nil {
			it = &item{N: n, Fields: map[string]string{}}
			byN[n] = it
		}
		if field == "" {
			it.Value = vs[0]
		} else {
			it.Fields[field] = vs[0]
		}
	}
	out := make([]item, 0, len(byN))
	for _, it := range byN {
		out = append(out, *it)
	}
	slices.SortFunc(out, func(a, b item) int { return a.N - b.N })
	return out, nil
}
