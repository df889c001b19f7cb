package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CORS answers the headers a player on another origin needs to fetch recordings from
// /files/ and /live/: the origin allowed, Range allowed in requests (seeking, FLV and
// MP4 players), and the headers a player reads from partial answers exposed. Only
// listed origins get them; "*" allows every origin. Nothing is sent with credentials.
type CORS struct {
	any     bool
	origins map[string]bool // normalized scheme://host[:port]
}

// Headers a cross-origin player may send and read.
const (
	corsAllowHeaders  = "Range, If-Range, If-None-Match, If-Modified-Since"
	corsExposeHeaders = "Content-Length, Content-Range, Accept-Ranges, Content-Type, ETag, Last-Modified"
	corsMaxAge        = "600"
)

// NewCORS checks the allowed origins: "*" or scheme://host[:port] (http or https, no
// path). An error names the entry at fault as corsAllowedOrigins[i].
func NewCORS(origins []string) (*CORS, error) {
	c := &CORS{origins: map[string]bool{}}
	for i, o := range origins {
		if o == "*" {
			c.any = true
			continue
		}
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("corsAllowedOrigins[%d]: %q: %v (want \"*\" or scheme://host[:port], e.g. https://www.example.com)", i, o, err)
		}
		c.origins[n] = true
	}
	return c, nil
}

func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("scheme must be http or https")
	case u.Host == "" || u.User != nil:
		return "", fmt.Errorf("no host")
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("an origin has no path, query or fragment")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// allowed reports whether the request's Origin may read the answer.
func (c *CORS) allowed(origin string) bool {
	if c == nil || origin == "" {
		return false
	}
	if c.any {
		return true
	}
	n, err := normalizeOrigin(origin)
	return err == nil && c.origins[n]
}

// wrap adds the CORS headers to next's answers and answers preflight requests itself.
func (c *CORS) wrap(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		if c != nil && !c.any && len(c.origins) > 0 {
			h.Add("Vary", "Origin") // the answer differs per origin: caches must keep them apart
		}
		ok := c.allowed(origin)
		if ok {
			if c.any {
				h.Set("Access-Control-Allow-Origin", "*")
			} else {
				h.Set("Access-Control-Allow-Origin", origin)
			}
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		if r.Method == http.MethodOptions {
			h.Set("Allow", "GET, HEAD, OPTIONS")
			if r.Header.Get("Access-Control-Request-Method") != "" {
				if !ok {
					w.WriteHeader(http.StatusForbidden)
					return
				}
				h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", corsMaxAge)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next(w, r)
	}
}
