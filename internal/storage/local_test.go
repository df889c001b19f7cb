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

func TestClashKey(t *testing.T) {
	for _, c := range [][3]any{{"a/b.ts", 1, "a/b_1.ts"}, {"record/x/1_0.m3u8", 2, "record/x/1_0_2.m3u8"},
		{"noext", 1, "noext_1"}, {"d.ir/noext", 3, "d.ir/noext_3"}, {".hidden", 1, ".hidden_1"}, {"a/x_init.mp4", 1, "a/x_init_1.mp4"}} {
		if got := ClashKey(c[0].(string), c[1].(int)); got != c[2] {
			t.Errorf("ClashKey(%q, %d) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// TestStoreUnique: a taken key moves the object to the next free alternative; nothing is
// replaced; with sameIsOK a retry of the same bytes finds the key it used.
func TestStoreUnique(t *testing.T) {
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
	read := func(key string) string {
		b, err := os.ReadFile(filepath.Join(st.Root, key))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for i, body := range []string{"one", "two", "three"} {
		k, err := StoreUnique(ctx, st, "r/s.ts", write("f", body), false)
		want := []string{"r/s.ts", "r/s_1.ts", "r/s_2.ts"}[i]
		if err != nil || k != want {
			t.Fatalf("store %q: key %q, %v; want %q", body, k, err, want)
		}
	}
	for k, body := range map[string]string{"r/s.ts": "one", "r/s_1.ts": "two", "r/s_2.ts": "three"} {
		if got := read(k); got != body {
			t.Errorf("%s holds %q, want %q", k, got, body)
		}
	}
	// A retry of "two" (its earlier attempt stored it, the local copy is back).
	k, err := StoreUnique(ctx, st, "r/s.ts", write("g", "two"), true)
	if err != nil || k != "r/s_1.ts" {
		t.Fatalf("retry: key %q, %v; want r/s_1.ts", k, err)
	}
	if _, err := os.Stat(filepath.Join(work, "g")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the local file of a retry that found its object is not removed: %v", err)
	}
	// Without sameIsOK the same bytes are another recording's: a new key.
	if k, err := StoreUnique(ctx, st, "r/s.ts", write("h", "two"), false); err != nil || k != "r/s_3.ts" {
		t.Fatalf("same bytes, other file: key %q, %v; want r/s_3.ts", k, err)
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
