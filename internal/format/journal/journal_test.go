package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type j struct {
	Version int
	Items   []string
}

func (x *j) JournalVersion() int { return x.Version }

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	var got j
	if err := Load(dir, "state.json", &got, 1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing journal: %v", err)
	}
	if err := Save(dir, "state.json", &j{Version: 1, Items: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if err := Save(dir, "state.json", &j{Version: 1, Items: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := Load(dir, "state.json", &got, 1); err != nil || len(got.Items) != 2 {
		t.Fatalf("load: %+v %v", got, err)
	}
	if err := Load(dir, "state.json", &got, 2); err == nil {
		t.Fatal("a journal of another version was accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temporary file left behind")
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o644)
	if err := Load(dir, "bad.json", &got, 1); err == nil {
		t.Fatal("a torn journal was accepted")
	}
}

// TestNoSync: SaveSync(false) and WriteFileNoSync write atomically without fsync; Save
// fsyncs the file and the directory.
func TestNoSync(t *testing.T) {
	var syncs int
	prev := SyncFile
	SyncFile = func(f *os.File) error { syncs++; return nil }
	defer func() { SyncFile = prev }()
	dir := t.TempDir()
	if err := SaveSync(dir, "state.json", &j{Version: 1, Items: []string{"a"}}, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileNoSync(dir, "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var got j
	if err := Load(dir, "state.json", &got, 1); err != nil || len(got.Items) != 1 || syncs != 0 {
		t.Fatalf("load: %+v %v, %d fsyncs", got, err, syncs)
	}
	if err := Save(dir, "state.json", &j{Version: 1}); err != nil || syncs != 2 {
		t.Fatalf("Save: %v, %d fsyncs (want file + directory)", err, syncs)
	}
}
