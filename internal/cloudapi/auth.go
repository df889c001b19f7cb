package cloudapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Signature algorithms.
const (
	algV3 = "ACS3-HMAC-SHA256"
	algV1 = "HMAC-SHA1"
)

// percentEncode is the RFC 3986 encoding both signature versions use.
func percentEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

// canonicalQuery is the encoded "k=v&..." of vals sorted by encoded key (then value),
// leaving out skip.
func canonicalQuery(vals url.Values, skip string) string {
	type pair struct{ k, v string }
	var pairs []pair
	for k, vs := range vals {
		if k == skip {
			continue
		}
		for _, v := range vs {
			pairs = append(pairs, pair{percentEncode(k), percentEncode(v)})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k + "=" + p.v)
	}
	return b.String()
}

// authenticate checks the request's signature, timestamp and nonce.
func (h *Handler) authenticate(q *request, body []byte) error {
	if auth := q.r.Header.Get("Authorization"); strings.HasPrefix(auth, "ACS3-") {
		return h.authV3(q, auth, body)
	}
	if q.p.get("Signature") != "" {
		return h.authV1(q)
	}
	return errorf(http.StatusBadRequest, "IncompleteSignature",
		"The request signature does not conform to Aliyun standards: no Authorization header (V3) and no Signature parameter (V1).")
}

// secret returns the secret of an access key id.
func (h *Handler) secret(id string) (string, error) {
	if id == "" {
		return "", missing("AccessKeyId")
	}
	s, ok := h.o.AccessKeys[id]
	if !ok || s == "" {
		return "", errorf(http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
	}
	return s, nil
}

// checkTime checks a signed timestamp against the window.
func (h *Handler) checkTime(name, v string) error {
	if v == "" {
		return missing(name)
	}
	t, err := time.Parse(TimeLayout, v)
	if err != nil {
		return errorf(http.StatusBadRequest, "InvalidTimeStamp.Format",
			"Specified time stamp or date value %q is not well formatted; want yyyy-MM-ddTHH:mm:ssZ (UTC).", v)
	}
	if d := h.o.Now().Sub(t); d > timestampWindow || d < -timestampWindow {
		return errorf(http.StatusBadRequest, "InvalidTimeStamp.Expired",
			"Specified time stamp or date value is expired: %s is more than 15 minutes from the server's time %s.", v, cloudTime(h.o.Now()))
	}
	return nil
}

// useNonce accepts a nonce once per access key within the timestamp window. The used
// nonces are kept in the catalog until a request with the same timestamp could no longer
// pass the window, so a captured request cannot be replayed after a restart either.
func (h *Handler) useNonce(r *http.Request, name, keyID, nonce string) error {
	if nonce == "" {
		return missing(name)
	}
	now := h.o.Now()
	ok, err := h.o.Catalog.UseNonce(r.Context(), keyID+"\x00"+nonce, now, now.Add(2*timestampWindow))
	if err != nil {
		return internal(fmt.Errorf("checking the signature nonce: %w", err))
	}
	if !ok {
		return errorf(http.StatusBadRequest, "SignatureNonceUsed", "Specified signature nonce was used already.")
	}
	return nil
}

func mismatch(stringToSign string) error {
	return errorf(http.StatusBadRequest, "SignatureDoesNotMatch",
		"Specified signature is not matched with our calculation. server string to sign is:%s", stringToSign)
}

// authV1 verifies a V1 (HMAC-SHA1) signed request: every parameter of the query and the
// form body but Signature, sorted and encoded, signed with secret + "&".
func (h *Handler) authV1(q *request) error {
	p := q.p
	if m := p.get("SignatureMethod"); m != algV1 {
		if m == "" {
			return missing("SignatureMethod")
		}
		return errorf(http.StatusBadRequest, "InvalidSignatureMethod", "Specified signature method %q is not supported; use HMAC-SHA1 or ACS3-HMAC-SHA256.", m)
	}
	if v := p.get("SignatureVersion"); v != "1.0" {
		if v == "" {
			return missing("SignatureVersion")
		}
		return errorf(http.StatusBadRequest, "InvalidSignatureVersion", "Specified signature version %q is not supported; use 1.0.", v)
	}
	keyID := p.get("AccessKeyId")
	secret, err := h.secret(keyID)
	if err != nil {
		return err
	}
	if err := h.checkTime("Timestamp", p.get("Timestamp")); err != nil {
		return err
	}
	if p.get("SignatureNonce") == "" {
		return missing("SignatureNonce")
	}
	sts := q.r.Method + "&" + percentEncode("/") + "&" + percentEncode(canonicalQuery(url.Values(p), "Signature"))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(sts))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(want), []byte(p.get("Signature"))) != 1 {
		return mismatch(sts)
	}
	return h.useNonce(q.r, "SignatureNonce", keyID, p.get("SignatureNonce"))
}

// authV3 verifies an ACS3-HMAC-SHA256 signed request.
func (h *Handler) authV3(q *request, auth string, body []byte) error {
	r := q.r
	alg, rest, _ := strings.Cut(auth, " ")
	if alg != algV3 {
		return errorf(http.StatusBadRequest, "InvalidSignatureMethod", "Specified signature algorithm %q is not supported; use ACS3-HMAC-SHA256 or HMAC-SHA1.", alg)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	keyID, signed, sig := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if keyID == "" || signed == "" || sig == "" {
		return errorf(http.StatusBadRequest, "IncompleteSignature",
			"The request signature does not conform to Aliyun standards: the Authorization header needs Credential, SignedHeaders and Signature.")
	}
	names := strings.Split(signed, ";")
	// host and every x-acs-* header sent must be signed.
	need := []string{"host"}
	for k := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-acs-") {
			need = append(need, lk)
		}
	}
	for _, n := range need {
		if !slices.Contains(names, n) {
			return errorf(http.StatusBadRequest, "IncompleteSignature",
				"The request signature does not conform to Aliyun standards: header %q is not in SignedHeaders.", n)
		}
	}
	secret, err := h.secret(keyID)
	if err != nil {
		return err
	}
	if err := h.checkTime("x-acs-date", r.Header.Get("x-acs-date")); err != nil {
		return err
	}
	nonce := r.Header.Get("x-acs-signature-nonce")
	if nonce == "" {
		return missing("x-acs-signature-nonce")
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if got := r.Header.Get("x-acs-content-sha256"); got == "" {
		return missing("x-acs-content-sha256")
	} else if !strings.EqualFold(got, payload) {
		return errorf(http.StatusBadRequest, "SignatureDoesNotMatch",
			"Specified signature is not matched with our calculation: x-acs-content-sha256 is not the SHA-256 of the body (%s).", payload)
	}
	var hdrs strings.Builder
	for _, n := range names {
		v := r.Header.Get(n)
		if n == "host" {
			v = r.Host
		} else if vs := r.Header.Values(n); len(vs) > 1 {
			v = strings.Join(vs, ",")
		}
		hdrs.WriteString(n + ":" + strings.TrimSpace(v) + "\n")
	}
	uri := r.URL.EscapedPath()
	if uri == "" {
		uri = "/"
	}
	canonical := r.Method + "\n" + uri + "\n" + canonicalQuery(r.URL.Query(), "") + "\n" + hdrs.String() + "\n" + signed + "\n" + payload
	ch := sha256.Sum256([]byte(canonical))
	sts := algV3 + "\n" + hex.EncodeToString(ch[:])
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(sts))
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(strings.ToLower(sig))) {
		return mismatch(sts)
	}
	return h.useNonce(r, "x-acs-signature-nonce", keyID, nonce)
}

// VerifyV3 checks an ACS3-HMAC-SHA256 signature (with the timestamp window and nonce
// replay protection) on any request, body included: the JSON API accepts the same
// signatures as the cloud-compatible one.
func (h *Handler) VerifyV3(r *http.Request, body []byte) error {
	return h.authV3(&request{r: r}, r.Header.Get("Authorization"), body)
}

// HasKeys reports whether access keys are configured.
func (h *Handler) HasKeys() bool { return len(h.o.AccessKeys) > 0 }
