package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuth(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	verify := func(r *http.Request, body []byte) error {
		if strings.Contains(r.Header.Get("Authorization"), "Signature=good") && string(body) == "{}" {
			return nil
		}
		return errors.New("SignatureDoesNotMatch")
	}
	cases := []struct {
		name   string
		auth   *Auth
		remote string
		header string
		want   int
	}{
		{"open: loopback", nil, "127.0.0.1:5000", "", 200},
		{"open: ipv6 loopback", &Auth{}, "[::1]:5000", "", 200},
		{"open: other host refused", nil, "192.0.2.7:5000", "", 403},
		{"token ok", &Auth{Tokens: []string{"0123456789abcdef"}}, "192.0.2.7:5000", "Bearer 0123456789abcdef", 200},
		{"token wrong", &Auth{Tokens: []string{"0123456789abcdef"}}, "192.0.2.7:5000", "Bearer nope", 401},
		{"token missing (even from loopback)", &Auth{Tokens: []string{"0123456789abcdef"}}, "127.0.0.1:5000", "", 401},
		{"v3 ok", &Auth{VerifyV3: verify}, "192.0.2.7:5000", "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host,Signature=good", 200},
		{"v3 bad", &Auth{VerifyV3: verify}, "192.0.2.7:5000", "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host,Signature=bad", 401},
		{"v3 without keys", &Auth{Tokens: []string{"0123456789abcdef"}}, "192.0.2.7:5000", "ACS3-HMAC-SHA256 Signature=good", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/rules", strings.NewReader("{}"))
			r.RemoteAddr = c.remote
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			w := httptest.NewRecorder()
			c.auth.wrap(ok).ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
			}
		})
	}
}
