package rules

import (
	"fmt"
	"strings"
)

// key identifies a rule in a Set: (lower-cased domain, app, stream).
type key struct{ domain, app, stream string }

func (k key) String() string {
	return fmt.Sprintf("domainName %q, appName %q, streamName %q", k.domain, k.app, k.stream)
}

// Set is an immutable collection of valid rules with distinct (domain, app, stream). It
// is safe for concurrent use.
type Set struct {
	rules []Rule // normalized, in the order given
	index map[key]int
}

// NewSet normalizes and validates copies of rules and indexes them. Errors carry field
// paths starting with the rule's index, e.g. "[2].recordFormats[0].cycleDuration", so a
// caller can prefix them (ValidationErrors.Prefix("rules")). Two rules with the same
// (domainName, appName, streamName), the domain compared case-insensitively, are an error.
// An empty Set is valid: it matches nothing.
func NewSet(rules []Rule) (*Set, error) {
	s := &Set{rules: make([]Rule, len(rules)), index: make(map[key]int, len(rules))}
	var es ValidationErrors
	for i := range rules {
		r := rules[i].Clone()
		r.Normalize()
		s.rules[i] = *r
		idx := fmt.Sprintf("[%d]", i)
		if err := r.Validate(); err != nil {
			es = append(es, err.(ValidationErrors).Prefix(idx)...)
			continue
		}
		k := key{r.DomainName, r.AppName, r.StreamName}
		if j, dup := s.index[k]; dup {
			es.add(idx, fmt.Sprintf("duplicate of [%d] (%s)", j, k))
			continue
		}
		s.index[k] = i
	}
	if len(es) > 0 {
		return nil, es
	}
	return s, nil
}

// Match returns a copy of the rule for a stream key, by priority:
//
//	domain + app + stream
//	domain + app + "*"
//	domain + "*" + "*"
//	then the same three with domain "*" (the catch-all)
//
// The domain is compared case-insensitively; app and stream names are case-sensitive.
// The returned rule belongs to the caller (a task keeps the rule it started with).
//
// A stream {X}_{T} that no stream-level rule names is the rendition of template T of
// stream X when X's rule records T (Rule.Renders): it gets X's rule's Rendition.
func (s *Set) Match(domain, app, stream string) (*Rule, bool) {
	if s == nil {
		return nil, false
	}
	domain = strings.ToLower(domain)
	_, exact := s.index[key{domain, app, stream}]
	_, exactAny := s.index[key{Wildcard, app, stream}]
	if !exact && !exactAny {
		if base, _, ok := s.RenditionOf(domain, app, stream); ok {
			r, _ := s.match(domain, app, base)
			return r.Rendition(), true
		}
	}
	return s.match(domain, app, stream)
}

// RenditionOf splits a rendition's stream name into the original's name and the
// template ID, when the original's rule records that template.
func (s *Set) RenditionOf(domain, app, stream string) (base, tpl string, ok bool) {
	i := strings.LastIndexByte(stream, '_')
	if s == nil || i <= 0 || i == len(stream)-1 {
		return "", "", false
	}
	base, tpl = stream[:i], stream[i+1:]
	r, found := s.match(strings.ToLower(domain), app, base)
	if !found || !r.Renders(tpl) {
		return "", "", false
	}
	return base, tpl, true
}

func (s *Set) match(domain, app, stream string) (*Rule, bool) {
	for _, d := range [...]string{domain, Wildcard} {
		for _, k := range [...]key{{d, app, stream}, {d, app, Wildcard}, {d, Wildcard, Wildcard}} {
			if i, ok := s.index[k]; ok {
				return s.rules[i].Clone(), true
			}
		}
	}
	return nil, false
}

// Rules returns copies of the normalized rules in their original order.
func (s *Set) Rules() []Rule {
	if s == nil {
		return nil
	}
	out := make([]Rule, len(s.rules))
	for i := range s.rules {
		out[i] = *s.rules[i].Clone()
	}
	return out
}

// Len returns the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// DefaultRules returns the rules used when a configuration has none: one normalized
// catch-all recording m3u8 for every stream.
func DefaultRules() []Rule {
	r := Rule{
		DomainName:    Wildcard,
		AppName:       Wildcard,
		StreamName:    Wildcard,
		RecordFormats: []RecordFormat{{Format: M3U8}},
	}
	r.Normalize()
	return []Rule{r}
}
