package storage

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// DefaultPartSize is the multipart part size of S3 uploads. Files up to this size go up in
// a single PUT; larger ones in parts of this size, read from the file with ReadAt (a part is
// never buffered whole, so a 6 h recording never sits in memory).
const DefaultPartSize = 64 << 20

// S3Config describes one S3-compatible endpoint (config: `s3: [{endpoint, accessKey,
// secretKey, secure, region, pathStyle}]`).
type S3Config struct {
	// Endpoint is "host:port" (or "https://host:port", which sets Secure; "http://" clears it).
	Endpoint string `yaml:"endpoint" json:"endpoint"`
	// AccessKey and SecretKey fall back to LIVREC_S3_ACCESS_KEY / LIVREC_S3_SECRET_KEY,
	// then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
	AccessKey string `yaml:"accessKey" json:"accessKey"`
	SecretKey string `yaml:"secretKey" json:"-"`
	Secure    bool   `yaml:"secure" json:"secure"`
	// Region is sent in signatures; empty asks the server (GetBucketLocation) once.
	Region string `yaml:"region" json:"region"`
	// PathStyle forces http://host/bucket/key addressing (MinIO, versitygw, most
	// self-hosted servers); otherwise the client picks (virtual-host for AWS).
	PathStyle bool `yaml:"pathStyle" json:"pathStyle"`
	// PartSize overrides DefaultPartSize (minimum 5 MiB, the S3 limit).
	PartSize int64 `yaml:"partSize,omitempty" json:"partSize,omitempty"`
	// Transport replaces the HTTP transport (tests); nil uses minio-go's default.
	Transport http.RoundTripper `yaml:"-" json:"-"`
}

// Endpoints lists the endpoints of cfgs in order: the ossEndpoint values a rule may name.
func Endpoints(cfgs []S3Config) []string {
	var eps []string
	for _, c := range cfgs {
		if c.Endpoint != "" {
			eps = append(eps, c.Endpoint)
		}
	}
	return eps
}

// withEnv returns cfg with the credentials filled from the environment where empty.
func (cfg S3Config) withEnv() S3Config {
	pick := func(v string, envs ...string) string {
		for _, e := range envs {
			if v != "" {
				break
			}
			v = os.Getenv(e)
		}
		return v
	}
	cfg.AccessKey = pick(cfg.AccessKey, "LIVREC_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
	cfg.SecretKey = pick(cfg.SecretKey, "LIVREC_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
	return cfg
}

// S3 is a create-only Store on an S3-compatible bucket.
//
// Store never overwrites: it asks for the key first (HEAD; an existing object is
// ErrExists without sending the body) and then uploads with the conditional header
// If-None-Match: *, so the server itself refuses to replace an object that appeared in
// between (412 → ErrExists). A server that rejects the header as unsupported (501
// NotImplemented, or 400 naming the header) is remembered, and from then on only the HEAD
// check guards the key: two writers racing for the same key between HEAD and PUT could then
// both succeed, the later one replacing the earlier. livrec never has two writers for one
// key, so this is accepted and logged at the first fallback. A server that silently ignores
// the header cannot be detected; the HEAD check covers it in the same way.
//
// S3 never deletes an object. The only DELETE requests it can cause are
// AbortMultipartUpload (DELETE ?uploadId=…), which discards the parts of a failed or probe
// multipart upload and never touches an object.
type S3 struct {
	cfg      S3Config
	bucket   string
	client   *minio.Client
	partSize int64
	// noCond is set once the server rejected If-None-Match.
	noCond atomic.Bool
	// Logf, when set, receives the rare diagnostic (conditional-write fallback).
	Logf func(format string, args ...any)
}

// NewS3 returns a store on bucket at the endpoint cfg describes. It does not contact the
// server; call Check for that.
func NewS3(cfg S3Config, bucket string) (*S3, error) {
	cfg = cfg.withEnv()
	ep := strings.TrimSpace(cfg.Endpoint)
	if i := strings.Index(ep, "://"); i >= 0 {
		u, err := url.Parse(ep)
		if err != nil {
			return nil, fmt.Errorf("s3 endpoint %q: %w", cfg.Endpoint, err)
		}
		switch u.Scheme {
		case "https":
			cfg.Secure = true
		case "http":
			cfg.Secure = false
		default:
			return nil, fmt.Errorf("s3 endpoint %q: unsupported scheme %q", cfg.Endpoint, u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("s3 endpoint %q: must not have a path", cfg.Endpoint)
		}
		ep = u.Host
	}
	if ep == "" {
		return nil, errors.New("s3: endpoint is empty")
	}
	cfg.Endpoint = ep
	if bucket == "" {
		return nil, fmt.Errorf("s3 %s: bucket is empty", ep)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Errorf("s3 %s: no credentials (set accessKey/secretKey, LIVREC_S3_ACCESS_KEY/LIVREC_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)", ep)
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(ep, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    cfg.Transport,
		// One attempt per call: the Uploader retries with its own backoff and metrics,
		// and a retried conditional PUT must be re-evaluated (see Uploader).
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", ep, err)
	}
	ps := cfg.PartSize
	if ps == 0 {
		ps = DefaultPartSize
	}
	if ps < 5<<20 {
		return nil, fmt.Errorf("s3 %s: part size %d below the 5 MiB minimum", ep, ps)
	}
	return &S3{cfg: cfg, bucket: bucket, client: client, partSize: ps}, nil
}

// Describe implements Store: "s3://endpoint/bucket".
func (s *S3) Describe() string { return "s3://" + s.cfg.Endpoint + "/" + s.bucket }

// ObjectURL is the plain (unsigned) URL of the object under key, addressed as the
// uploads are: path style (scheme://host/bucket/key) or, where the client uses it
// (AWS, Google, Aliyun OSS endpoints without pathStyle), virtual-host style
// (scheme://bucket.host/key). It is what the cloud API reports as RecordUrl; whether it
// opens without credentials depends on the bucket's policy.
func (s *S3) ObjectURL(key string) string {
	u := *s.client.EndpointURL()
	if !s.cfg.PathStyle && s3utils.IsVirtualHostSupported(u, s.bucket) {
		u.Host = s.bucket + "." + u.Host
		u.Path = "/" + key
	} else {
		u.Path = "/" + s.bucket + "/" + key
	}
	return u.String()
}

// Bucket returns the bucket name.
func (s *S3) Bucket() string { return s.bucket }

func (s *S3) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Store implements Store (see the type's documentation for the no-overwrite rules).
func (s *S3) Store(ctx context.Context, key, p string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("s3 store %s: %s is a directory", key, p)
	}
	cond := !s.noCond.Load()
	if exists, err := s.exists(ctx, key); err != nil {
		// Without s3:ListBucket, AWS answers 403 instead of 404 for a missing key; the
		// conditional PUT still guards the key, so go on unless the server lacks it.
		if !cond || minio.ToErrorResponse(errors.Unwrap(err)).StatusCode != http.StatusForbidden {
			return err
		}
	} else if exists {
		return fmt.Errorf("%s: %w", s.where(key), ErrExists)
	}
	err = s.put(ctx, key, f, fi.Size(), cond)
	if err != nil && cond && condUnsupported(err) {
		s.noCond.Store(true)
		s.logf("s3 %s: server rejects If-None-Match (%v); falling back to a HEAD check before each upload (not atomic)", s.Describe(), err)
		err = s.put(ctx, key, f, fi.Size(), false)
	}
	if err != nil {
		return s.putError(key, err)
	}
	f.Close()
	return os.Remove(p)
}

// putError maps a failed conditional write (412, or 409 ConditionalRequestConflict for a
// concurrent one) to ErrExists and names the object in other errors.
func (s *S3) putError(key string, err error) error {
	r := minio.ToErrorResponse(err)
	if r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed" ||
		r.StatusCode == http.StatusConflict && r.Code == "ConditionalRequestConflict" {
		return fmt.Errorf("%s: %w", s.where(key), ErrExists)
	}
	return fmt.Errorf("s3 put %s: %w", s.where(key), err)
}

// put uploads the file: one PUT up to the part size, a multipart upload above it. With
// conditional, the PUT, or the CompleteMultipartUpload that creates the object, carries
// If-None-Match: * (minio-go's own multipart PutObject drops custom headers on the
// complete request, so parts are driven here through minio.Core). Parts are sent one after
// the other, each streamed from the file through a SectionReader. Errors are minio-go's,
// unwrapped, for the caller to classify.
func (s *S3) put(ctx context.Context, key string, f *os.File, size int64, conditional bool) error {
	if size <= s.partSize {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		opts := minio.PutObjectOptions{ContentType: contentType(key), DisableMultipart: true}
		if conditional {
			opts.SetMatchETagExcept("*")
		}
		info, err := s.client.PutObject(ctx, s.bucket, key, f, size, opts)
		if err == nil && info.Size != size {
			err = fmt.Errorf("server stored %d bytes of %d", info.Size, size)
		}
		return err
	}
	core := minio.Core{Client: s.client}
	id, err := core.NewMultipartUpload(ctx, s.bucket, key, minio.PutObjectOptions{ContentType: contentType(key)})
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			// Discards the uploaded parts; never touches an object.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if aerr := core.AbortMultipartUpload(actx, s.bucket, key, id); aerr != nil {
				s.logf("s3 %s: abort of failed multipart upload %s: %v", s.where(key), id, aerr)
			}
		}
	}()
	n := int((size + s.partSize - 1) / s.partSize)
	parts := make([]minio.CompletePart, 0, n)
	for i := range n {
		off := int64(i) * s.partSize
		sz := min(s.partSize, size-off)
		part, err := core.PutObjectPart(ctx, s.bucket, key, id, i+1, io.NewSectionReader(f, off, sz), sz, minio.PutObjectPartOptions{})
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: i + 1, ETag: part.ETag})
	}
	var opts minio.PutObjectOptions
	if conditional {
		opts.SetMatchETagExcept("*")
	}
	if _, err := core.CompleteMultipartUpload(ctx, s.bucket, key, id, parts, opts); err != nil {
		return err
	}
	done = true
	return nil
}

// condUnsupported tells whether a PUT failed because the server does not implement the
// If-None-Match header (as opposed to the precondition failing).
func condUnsupported(err error) bool {
	r := minio.ToErrorResponse(err)
	if r.StatusCode == http.StatusNotImplemented || r.Code == "NotImplemented" {
		return true
	}
	return r.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(r.Message), "if-none-match")
}

func (s *S3) where(key string) string { return s.Describe() + "/" + key }

// exists asks the server whether key is taken (HEAD).
func (s *S3) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("s3 head %s: %w", s.where(key), err)
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket
}

// Open implements Store. The object is read with ranged GETs as it is read and seeked.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	o, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", s.where(key), err)
	}
	st, err := o.Stat()
	if err != nil {
		o.Close()
		if isNotFound(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("s3 get %s: %w", s.where(key), err)
	}
	return &s3Object{Object: o, size: st.Size, mod: st.LastModified}, nil
}

type s3Object struct {
	*minio.Object
	size int64
	mod  time.Time
}

func (o *s3Object) Size() int64        { return o.size }
func (o *s3Object) ModTime() time.Time { return o.mod }

// SameContent reports whether the object under key has exactly the bytes of the local
// file p. Size and ETag are compared first (the ETag of a plain upload is the MD5, of a
// multipart upload the MD5 of the part MD5s with this store's part size); when the ETag
// cannot decide, the object is downloaded and compared byte by byte.
func (s *S3) SameContent(ctx context.Context, key, p string) (bool, error) {
	st, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return false, ErrNotFound
		}
		return false, fmt.Errorf("s3 head %s: %w", s.where(key), err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	if st.Size != fi.Size() {
		return false, nil
	}
	if etag, err := fileETag(p, s.partSize, st.ETag); err == nil && etag != "" &&
		strings.EqualFold(etag, strings.Trim(st.ETag, `"`)) {
		return true, nil
	}
	return compareBytes(ctx, s, key, p)
}

// fileETag computes the S3 ETag the file would have: its MD5 for a plain upload, or, when
// remote names a multipart ETag ("…-N"), the MD5 of the part MD5s plus "-N" for partSize
// parts. It returns "" when the part count cannot match.
func fileETag(p string, partSize int64, remote string) (string, error) {
	remote = strings.Trim(remote, `"`)
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dash := strings.LastIndexByte(remote, '-')
	if dash < 0 {
		h := md5.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	n, err := strconv.Atoi(remote[dash+1:])
	if err != nil || n <= 0 {
		return "", nil
	}
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if (fi.Size()+partSize-1)/partSize != int64(n) {
		return "", nil
	}
	all := md5.New()
	for i := 0; i < n; i++ {
		h := md5.New()
		if _, err := io.Copy(h, io.NewSectionReader(f, int64(i)*partSize, partSize)); err != nil {
			return "", err
		}
		all.Write(h.Sum(nil))
	}
	return hex.EncodeToString(all.Sum(nil)) + "-" + strconv.Itoa(n), nil
}

// Check verifies at start-up that the endpoint is reachable, the credentials are valid, the
// bucket exists and can be written to (one probe covers all four). Its errors name the endpoint and bucket and say
// what to fix.
//
// Write permission is probed without creating or deleting any object: a multipart upload
// is initiated for the key ".livrec-probe/<random>" (CreateMultipartUpload needs the
// s3:PutObject permission) and aborted at once (AbortMultipartUpload, DELETE ?uploadId=…).
// No object ever exists under the probe key; the abort only discards the empty upload.
// (A PUT of a probe object would leave an object that livrec, never deleting, could not
// remove.)
func (s *S3) Check(ctx context.Context) error {
	where := fmt.Sprintf("s3 endpoint %s (secure=%t), bucket %q", s.cfg.Endpoint, s.cfg.Secure, s.bucket)
	// The probe's POST answers with an XML error body (unlike a HEAD on the bucket), so a
	// wrong secret, an unknown key, a missing bucket and a missing permission are told apart.
	core := minio.Core{Client: s.client}
	probe := ".livrec-probe/" + randomHex(8)
	id, err := core.NewMultipartUpload(ctx, s.bucket, probe, minio.PutObjectOptions{})
	if err != nil {
		return fmt.Errorf("%s: %s", where, explain(err))
	}
	if err := core.AbortMultipartUpload(context.WithoutCancel(ctx), s.bucket, probe, id); err != nil {
		s.logf("%s: aborting the write-check upload %s failed: %v", where, probe, err)
	}
	return nil
}

// explain turns an S3 error into a message that says what to fix.
func explain(err error) string {
	r := minio.ToErrorResponse(err)
	switch {
	case r.Code == "InvalidAccessKeyId" || r.Code == "XAdminUserNotFound":
		return fmt.Sprintf("the access key is not known to the server (%s): check accessKey / LIVREC_S3_ACCESS_KEY", r.Code)
	case r.Code == "SignatureDoesNotMatch":
		return "the secret key is wrong (SignatureDoesNotMatch): check secretKey / LIVREC_S3_SECRET_KEY"
	case r.Code == "AccessDenied" || r.StatusCode == http.StatusForbidden:
		return fmt.Sprintf("access denied (%s): the credentials lack permission (s3:PutObject / s3:ListBucket) on the bucket", orStatus(r))
	case r.Code == minio.NoSuchBucket:
		return "the bucket does not exist (NoSuchBucket): create it, or fix the bucket name"
	case r.Code != "":
		return fmt.Sprintf("%s: %s", r.Code, r.Message)
	case r.StatusCode != 0:
		return fmt.Sprintf("HTTP %d %s", r.StatusCode, http.StatusText(r.StatusCode))
	}
	return fmt.Sprintf("cannot reach the server: %v", err)
}

func orStatus(r minio.ErrorResponse) string {
	if r.Code != "" {
		return r.Code
	}
	return "HTTP " + strconv.Itoa(r.StatusCode)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// contentType guesses the Content-Type stored with an object (used when serving straight
// from the bucket).
func contentType(key string) string {
	switch ext := strings.ToLower(path.Ext(key)); ext {
	case ".m3u8":
		return "application/vnd.apple.mpegurl"
	case ".ts":
		return "video/mp2t"
	case ".m4s":
		return "video/iso.segment"
	case ".mp4", ".m4v":
		return "video/mp4"
	case ".m4a":
		return "audio/mp4"
	case ".flv":
		return "video/x-flv"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
	}
	return "application/octet-stream"
}
