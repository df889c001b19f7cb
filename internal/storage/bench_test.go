package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkS3Upload measures S3.Store throughput to a local versitygw (loopback, posix
// backend on the test's temp dir): single PUTs of segment-sized files and a multipart
// upload (8 MiB parts).
func BenchmarkS3Upload(b *testing.B) {
	v := startVersitygw(b)
	for _, c := range []struct {
		name     string
		size     int
		partSize int64
	}{{"2MiB", 2 << 20, 0}, {"16MiB", 16 << 20, 0}, {"40MiB-multipart", 40 << 20, 8 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := v.config()
			cfg.PartSize = c.partSize
			s := newTestS3(b, cfg)
			dir := b.TempDir()
			tmpl := writeTemp(b, dir, "template", randomBytes(c.size, 7))
			ctx := context.Background()
			b.SetBytes(int64(c.size))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				p := filepath.Join(dir, "f")
				if err := os.Link(tmpl, p); err != nil {
					b.Fatal(err)
				}
				if err := s.Store(ctx, fmt.Sprintf("bench/%s/%d", c.name, i), p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSpoolStore measures the spool overhead per segment: what Uploader.Store costs a
// writer (journal entry written and fsync'd, file renamed in, directory fsync'd), with the
// uploads not running.
func BenchmarkSpoolStore(b *testing.B) {
	dir := b.TempDir()
	tmpl := writeTemp(b, dir, "template", randomBytes(1<<20, 8))
	u, err := NewUploader(filepath.Join(dir, "spool"), newMemStore(), UploaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		p := filepath.Join(dir, "seg")
		if err := os.Link(tmpl, p); err != nil {
			b.Fatal(err)
		}
		if err := u.Store(ctx, fmt.Sprintf("rec/%d.ts", i), p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUploaderS3 measures end-to-end throughput through the spool to versitygw
// (Store of 2 MiB segments on 4 streams, then drained).
func BenchmarkUploaderS3(b *testing.B) {
	v := startVersitygw(b)
	s := newTestS3(b, v.config())
	dir := b.TempDir()
	tmpl := writeTemp(b, dir, "template", randomBytes(2<<20, 9))
	u, err := NewUploader(filepath.Join(dir, "spool"), s, UploaderOptions{Workers: 4,
		StreamOf: func(key string) string { return key[:len("bench/x")] }})
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	ctx := context.Background()
	u.Start(ctx)
	b.SetBytes(2 << 20)
	b.ResetTimer()
	for i := range b.N {
		p := filepath.Join(dir, "seg")
		if err := os.Link(tmpl, p); err != nil {
			b.Fatal(err)
		}
		if err := u.Store(ctx, fmt.Sprintf("bench/%d/%d.ts", i%4, i), p); err != nil {
			b.Fatal(err)
		}
	}
	if err := u.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}
