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
