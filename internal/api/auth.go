package api

import (
	"bytes"
	"crypto/subtle"
	"io"
	"net"
	"net/http"
	"strings"
)

// Auth protects /api/v1. With access keys or tokens configured, a request needs either
// "Authorization: Bearer <token>" with a configured token or an ACS3-HMAC-SHA256
// signature by a configured access key (the cloud SDKs' V3 signing). With neither
// configured, only loopback clients are answered.
type Auth struct {
	Tokens   []string
	VerifyV3 func(r *http.Request, body []byte) error // nil: no access keys
}

// Open reports whether nothing is configured (loopback-only mode).
func (a *Auth) Open() bool { return a == nil || len(a.Tokens) == 0 && a.VerifyV3 == nil }

func (a *Auth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Open() {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				writeError(w, http.StatusForbidden, "", "the API answers only loopback clients until accessKeys or apiTokens are configured")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		authz := r.Header.Get("Authorization")
		if tok, ok := strings.CutPrefix(authz, "Bearer "); ok {
			for _, t := range a.Tokens {
				if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
					next.ServeHTTP(w, r)
					return
				}
			}
			writeError(w, http.StatusUnauthorized, "Authorization", "unknown bearer token")
			return
		}
		if strings.HasPrefix(authz, "ACS3-") && a.VerifyV3 != nil {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			if err != nil {
				writeError(w, http.StatusRequestEntityTooLarge, "", "body larger than 1 MiB")
				return
			}
			if err := a.VerifyV3(r, body); err != nil {
				writeError(w, http.StatusUnauthorized, "Authorization", err.Error())
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="livrec"`)
		writeError(w, http.StatusUnauthorized, "Authorization", "authentication required: a bearer token from apiTokens, or an ACS3-HMAC-SHA256 signature by an access key")
	})
}
