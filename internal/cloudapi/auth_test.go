package cloudapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	live "github.com/alibabacloud-go/live-20161101/v2/client"
	"github.com/google/uuid"

	"github.com/livrec/livrec/internal/catalog"
)

// pe is RFC 3986 percent-encoding, written independently of the package's.
func pe(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}

func canon(v url.Values) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, pe(k)+"="+pe(v.Get(k)))
	}
	return strings.Join(parts, "&")
}

// signV1 adds the V1 common parameters and signature to v.
func signV1(method string, v url.Values, keyID, secret string, ts time.Time, nonce string) {
	v.Set("Format", "JSON")
	v.Set("Version", Version)
	v.Set("AccessKeyId", keyID)
	v.Set("SignatureMethod", "HMAC-SHA1")
	v.Set("SignatureVersion", "1.0")
	v.Set("SignatureNonce", nonce)
	v.Set("Timestamp", ts.UTC().Format(TimeLayout))
	v.Del("Signature")
	sts := method + "&%2F&" + pe(canon(v))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(sts))
	v.Set("Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

// v3Request builds a V3 signed POST with the parameters in the query.
func v3Request(t *testing.T, base, action string, q url.Values, keyID, secret string, ts time.Time, nonce string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/?"+canon(q), nil)
	if err != nil {
		t.Fatal(err)
	}
	empty := sha256.Sum256(nil)
	hdr := map[string]string{
		"host": req.URL.Host, "x-acs-action": action, "x-acs-version": Version, "x-acs-date": ts.UTC().Format(TimeLayout),
		"x-acs-signature-nonce": nonce, "x-acs-content-sha256": hex.EncodeToString(empty[:]),
	}
	names := make([]string, 0, len(hdr))
	for k := range hdr {
		names = append(names, k)
	}
	sort.Strings(names)
	var ch strings.Builder
	for _, n := range names {
		ch.WriteString(n + ":" + hdr[n] + "\n")
		if n != "host" {
			req.Header.Set(n, hdr[n])
		}
	}
	signed := strings.Join(names, ";")
	cr := "POST\n/\n" + canon(q) + "\n" + ch.String() + "\n" + signed + "\n" + hdr["x-acs-content-sha256"]
	h := sha256.Sum256([]byte(cr))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("ACS3-HMAC-SHA256\n" + hex.EncodeToString(h[:])))
	req.Header.Set("Authorization", "ACS3-HMAC-SHA256 Credential="+keyID+",SignedHeaders="+signed+",Signature="+hex.EncodeToString(mac.Sum(nil)))
	return req
}

// do sends a request and returns the status and the decoded body.
func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not JSON: %q", b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	return resp.StatusCode, m
}

func wantError(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["Code"] != wantCode {
		t.Errorf("%s: %d %v, want %d %s", what, status, body, wantStatus, wantCode)
		return
	}
	for _, k := range []string{"RequestId", "HostId", "Message", "Recommend"} {
		if v, _ := body[k].(string); v == "" {
			t.Errorf("%s: error answer without %s: %v", what, k, body)
		}
	}
}

func v1Get(t *testing.T, e *env, params url.Values) (int, map[string]any) {
	req, err := http.NewRequest("GET", e.srv.URL+"/?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func TestSignatureV1(t *testing.T) {
	e := newEnv(t, nil)
	describe := func() url.Values {
		return url.Values{"Action": {"DescribeLiveRecordConfig"}, "DomainName": {"a.example.com"}, "AppName": {"live *~x"}}
	}
	now := time.Now()

	v := describe()
	signV1("GET", v, testKeyID, testSecret, now, "n-ok")
	status, body := v1Get(t, e, v)
	if status != 200 || body["RequestId"] == "" || body["TotalNum"] != 0.0 {
		t.Fatalf("signed GET: %d %v", status, body)
	}
	status, body = v1Get(t, e, v) // the same request again
	wantError(t, "replayed nonce", status, body, 400, "SignatureNonceUsed")

	v = describe()
	signV1("GET", v, testKeyID, "wrong", now, uuid.NewString())
	status, body = v1Get(t, e, v)
	wantError(t, "wrong secret", status, body, 400, "SignatureDoesNotMatch")

	v = describe()
	signV1("GET", v, "nobody", testSecret, now, uuid.NewString())
	status, body = v1Get(t, e, v)
	wantError(t, "unknown key", status, body, 404, "InvalidAccessKeyId.NotFound")

	for _, d := range []time.Duration{-16 * time.Minute, 16 * time.Minute} {
		v = describe()
		signV1("GET", v, testKeyID, testSecret, now.Add(d), uuid.NewString())
		status, body = v1Get(t, e, v)
		wantError(t, "stale timestamp", status, body, 400, "InvalidTimeStamp.Expired")
	}

	v = describe()
	signV1("GET", v, testKeyID, testSecret, now, uuid.NewString())
	v.Set("AppName", "changed") // tampered after signing
	status, body = v1Get(t, e, v)
	wantError(t, "tampered", status, body, 400, "SignatureDoesNotMatch")

	status, body = v1Get(t, e, describe())
	wantError(t, "unsigned", status, body, 400, "IncompleteSignature")

	v = url.Values{"Action": {"DescribeLiveRecordConfig"}}
	signV1("GET", v, testKeyID, testSecret, now, uuid.NewString())
	status, body = v1Get(t, e, v)
	wantError(t, "missing DomainName", status, body, 400, "MissingParameter")

	v = url.Values{"Action": {"NoSuchAction"}}
	signV1("GET", v, testKeyID, testSecret, now, uuid.NewString())
	status, body = v1Get(t, e, v)
	wantError(t, "unknown action", status, body, 404, "InvalidAction.NotFound")

	// Parameters in a form body (CLI and Python style), signed together with the query.
	form := url.Values{"DomainName": {"a.example.com"}, "PageSize": {"5"}}
	all := url.Values{"Action": {"DescribeLiveRecordConfig"}, "DomainName": {"a.example.com"}, "PageSize": {"5"}}
	signV1("POST", all, testKeyID, testSecret, now, uuid.NewString())
	query := url.Values{}
	for k, vs := range all {
		if _, inForm := form[k]; !inForm {
			query[k] = vs
		}
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/?"+query.Encode(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body = do(t, req)
	if status != 200 || body["PageSize"] != 5.0 {
		t.Errorf("form body: %d %v", status, body)
	}

	// Out of range and wrong version.
	v = describe()
	v.Set("PageSize", "31")
	signV1("GET", v, testKeyID, testSecret, now, uuid.NewString())
	status, body = v1Get(t, e, v)
	wantError(t, "PageSize 31", status, body, 400, "InvalidParameter")
	v = describe()
	signV1("GET", v, testKeyID, testSecret, now, uuid.NewString())
	v.Set("Version", "2014-01-01")
	signAgain := v // re-sign with the wrong version in place
	signAgain.Del("Signature")
	mac := hmac.New(sha1.New, []byte(testSecret+"&"))
	mac.Write([]byte("GET&%2F&" + pe(canon(signAgain))))
	signAgain.Set("Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	status, body = v1Get(t, e, signAgain)
	wantError(t, "wrong version", status, body, 400, "InvalidVersion")
}

func TestSignatureV3(t *testing.T) {
	e := newEnv(t, nil)
	q := url.Values{"DomainName": {"a.example.com"}, "AppName": {"a b*c~"}}
	now := time.Now()
	const action = "DescribeLiveRecordConfig"

	status, body := do(t, v3Request(t, e.srv.URL, action, q, testKeyID, testSecret, now, "nonce-1"))
	if status != 200 || body["Order"] != "asc" {
		t.Fatalf("signed: %d %v", status, body)
	}
	status, body = do(t, v3Request(t, e.srv.URL, action, q, testKeyID, testSecret, now, "nonce-1"))
	wantError(t, "replayed nonce", status, body, 400, "SignatureNonceUsed")
	status, body = do(t, v3Request(t, e.srv.URL, action, q, testKeyID, "wrong", now, "nonce-2"))
	wantError(t, "wrong secret", status, body, 400, "SignatureDoesNotMatch")
	status, body = do(t, v3Request(t, e.srv.URL, action, q, "nobody", testSecret, now, "nonce-3"))
	wantError(t, "unknown key", status, body, 404, "InvalidAccessKeyId.NotFound")
	status, body = do(t, v3Request(t, e.srv.URL, action, q, testKeyID, testSecret, now.Add(-20*time.Minute), "nonce-4"))
	wantError(t, "stale", status, body, 400, "InvalidTimeStamp.Expired")

	req := v3Request(t, e.srv.URL, action, q, testKeyID, testSecret, now, "nonce-5")
	req.Header.Set("x-acs-extra", "unsigned")
	status, body = do(t, req)
	wantError(t, "unsigned x-acs header", status, body, 400, "IncompleteSignature")

	req = v3Request(t, e.srv.URL, action, q, testKeyID, testSecret, now, "nonce-6")
	req.URL.RawQuery = canon(url.Values{"DomainName": {"b.example.com"}, "AppName": {"a b*c~"}})
	status, body = do(t, req)
	wantError(t, "tampered query", status, body, 400, "SignatureDoesNotMatch")

	status, body = do(t, v3Request(t, e.srv.URL, "AddLiveAppRecordConfig", url.Values{"DomainName": {"a.example.com"}, "AppName": {"live"},
		"OssEndpoint": {"oss-cn-beijing.aliyuncs.com"}, "RecordFormat.1.Format": {"m3u8"}}, testKeyID, testSecret, now, "nonce-7"))
	wantError(t, "missing OssBucket", status, body, 400, "MissingParameter")
}

// TestSDKWrongCredentials: the SDK sees the signature errors as the cloud sends them.
func TestSDKWrongCredentials(t *testing.T) {
	e := newEnv(t, nil)
	req := &live.DescribeLiveRecordConfigRequest{DomainName: s("a.example.com")}
	for _, v1 := range []bool{false, true} {
		_, err := e.client(v1, testKeyID, "wrong").DescribeLiveRecordConfig(req)
		wantSDKError(t, err, 400, "SignatureDoesNotMatch")
		_, err = e.client(v1, "unknown", testSecret).DescribeLiveRecordConfig(req)
		wantSDKError(t, err, 404, "InvalidAccessKeyId.NotFound")
	}
}

func TestFlattenedList(t *testing.T) {
	p := params{"RecordFormat.2.Format": {"flv"}, "RecordFormat.1.Format": {"m3u8"}, "RecordFormat.1.SliceDuration": {"5"},
		"RecordId.10": {"b"}, "RecordId.3": {"a"}, "Other": {"x"}}
	l, err := p.list("RecordFormat")
	if err != nil || len(l) != 2 || l[0].N != 1 || l[0].Fields["SliceDuration"] != "5" || l[1].Fields["Format"] != "flv" {
		t.Errorf("RecordFormat: %+v %v", l, err)
	}
	ids, err := p.list("RecordId")
	if err != nil || len(ids) != 2 || ids[0].Value != "a" || ids[1].Value != "b" {
		t.Errorf("RecordId: %+v %v", ids, err)
	}
	if _, err := (params{"RecordId.0": {"x"}}).list("RecordId"); err == nil {
		t.Error("index 0 accepted")
	}
}

// TestReplayAfterRestart: a signed request captured and sent again after a restart (a
// new Handler on the catalog file reopened) is refused as a used nonce, V3 and V1.
func TestReplayAfterRestart(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	q := url.Values{"DomainName": {"a.example.com"}, "AppName": {"live"}}
	v3 := func(base string) *http.Request {
		return v3Request(t, base, "DescribeLiveRecordConfig", q, testKeyID, testSecret, now, "captured-v3")
	}
	v1 := url.Values{"Action": {"DescribeLiveRecordConfig"}, "DomainName": {"a.example.com"}}
	signV1("GET", v1, testKeyID, testSecret, now, "captured-v1")
	v1Req := func(base string) *http.Request {
		req, err := http.NewRequest("GET", base+"/?"+v1.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	for what, req := range map[string]*http.Request{"V3": v3(e.srv.URL), "V1": v1Req(e.srv.URL)} {
		if status, body := do(t, req); status != 200 {
			t.Fatalf("%s: first request: %d %v", what, status, body)
		}
	}

	cat, err := catalog.Open(filepath.Join(e.dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	restarted := httptest.NewServer(New(Options{Catalog: cat, AccessKeys: map[string]string{testKeyID: testSecret}}))
	defer restarted.Close()
	status, body := do(t, v3(restarted.URL))
	wantError(t, "V3 replay after restart", status, body, 400, "SignatureNonceUsed")
	status, body = do(t, v1Req(restarted.URL))
	wantError(t, "V1 replay after restart", status, body, 400, "SignatureNonceUsed")
}
