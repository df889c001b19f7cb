// Package console is livrec's web console, embedded in the binary: plain ES modules and
// hand-written CSS (no build step), with the hls.js and mpegts.js players copied from
// their npm packages into web/vendor (vendor.mjs). It only talks to the JSON API; its
// browser tests are test/console_test.mjs, run by internal/e2e.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed web
var web embed.FS

// Prefix is the URL path of the console's files; the page itself is served at "/".
const Prefix = "/console/"

// securityHeaders keep the page to its own origin: no external script, style or
// connection, nothing framing it. Players fetch media from the same server (blob: for
// MSE), and hls.js runs its transmuxer in a worker.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; worker-src 'self' blob:; " +
		"connect-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
}

type asset struct {
	name string
	data []byte
	etag string
	typ  string

	gzOnce sync.Once
	gz     []byte // nil when compressing does not pay
}

// Handler serves the page on "/" and its files under Prefix. Files are revalidated
// (ETag) on every load, so a new binary's console is picked up at once, and gzipped when
// the browser accepts it.
func Handler() http.Handler {
	assets := map[string]*asset{}
	fs.WalkDir(web, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := web.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		typ := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js", ".mjs":
			typ = "text/javascript; charset=utf-8"
		case ".LICENSE":
			typ = "text/plain; charset=utf-8"
		}
		name := strings.TrimPrefix(p, "web/")
		assets[name] = &asset{name: name, data: b, typ: typ, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = strings.TrimPrefix(r.URL.Path, Prefix)
		}
		a := assets[name]
		if a == nil || r.URL.Path != "/" && name == "index.html" {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		h.Set("Content-Type", a.typ)
		h.Set("Cache-Control", "no-cache")
		h.Add("Vary", "Accept-Encoding")
		body, etag := a.data, a.etag
		if gz := a.gzipped(); gz != nil && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.Set("Content-Encoding", "gzip")
			body, etag = gz, strings.TrimSuffix(etag, `"`)+`-gz"` // another representation, another tag
		}
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		if len(a.data) < 1024 || strings.HasSuffix(a.name, ".png") {
			return
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(a.data)
		zw.Close()
		if buf.Len() < len(a.data)*9/10 {
			a.gz = buf.Bytes()
		}
	})
	return a.gz
}
