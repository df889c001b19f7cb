package storage

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestLocalCreateOnly(t *testing.T) {
	ctx := context.Background()
	st, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := st.Store(ctx, "record/a/b/1.ts", write("x", "first")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(work, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("local file should be gone after Store, stat err=%v", err)
	}
	second := write("y", "second")
	if err := st.Store(ctx, "record/a/b/1.ts", second); !errors.Is(err, ErrExists) {
		t.Fatalf("want ErrExists, got %v", err)
	}
	if _, err := os.Stat(second); err != nil {
		t.Fatalf("file must stay in place after a clash: %v", err)
	}
	o, err := st.Open(ctx, "record/a/b/1.ts")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, _ := io.ReadAll(o)
	if string(b) != "first" || o.Size() != 5 {
		t.Fatalf("stored object was replaced: %q", b)
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "./a"} {
		if err := st.Store(ctx, bad, second); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if _, err := st.Open(ctx, "record/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

// TestLocalOpenRefusesSymlinks: a symbolic link anywhere below the root (the object or a
// directory on its way) is not found, whatever it points to.
func TestLocalOpenRefusesSymlinks(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "live", "s"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "live", "s", "1.ts"), []byte("media"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"live/s/leak.ts": outside,                            // a file link out of the root
		"live/s/2.ts":    filepath.Join(root, "live/s/1.ts"), // a link within the root
		"live/dir":       filepath.Dir(outside),              // a directory link
		"alias":          filepath.Join(root, "live"),
	} {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"live/s/leak.ts", "live/s/2.ts", "live/dir/secret", "alias/s/1.ts"} {
		if o, err := st.Open(ctx, key); !errors.Is(err, ErrNotFound) {
			if o != nil {
				o.Close()
			}
			t.Errorf("Open(%q) through a symlink: %v, want ErrNotFound", key, err)
		}
	}
	o, err := st.Open(ctx, "live/s/1.ts")
	if err != nil {
		t.Fatalf("regular object: %v", err)
	}
	o.Close()
}
