package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// URLPath is the path at which livrec's HTTP server serves the object stored under key
// (its /files/ route, from local disk or a bucket), escaped where the key needs it: what
// a player opens, and what every API gives instead of letting users build it.
func URLPath(key string) string {
	return (&url.URL{Path: "/files/" + key}).EscapedPath()
}

// checkKey refuses keys that are empty, absolute, or have empty, "." or ".." elements
// (the rules Local.Path applies), so every backend accepts the same keys.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid object key %q", key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("invalid object key %q", key)
		}
	}
	return nil
}

// SameContent reports whether the object stored under key holds exactly the bytes of the
// local file p (an earlier attempt stored it, so an ErrExists is not a clash). Backends
// with a cheaper comparison (S3: size and ETag) provide a method
// SameContent(ctx, key, p) (bool, error); otherwise the object is read and compared.
// A missing object gives ErrNotFound.
func SameContent(ctx context.Context, st Store, key, p string) (bool, error) {
	if c, ok := st.(interface {
		SameContent(ctx context.Context, key, p string) (bool, error)
	}); ok {
		return c.SameContent(ctx, key, p)
	}
	return compareBytes(ctx, st, key, p)
}

func compareBytes(ctx context.Context, st Store, key, p string) (bool, error) {
	local, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer local.Close()
	fi, err := local.Stat()
	if err != nil {
		return false, err
	}
	obj, err := st.Open(ctx, key)
	if err != nil {
		return false, err
	}
	defer obj.Close()
	if obj.Size() != fi.Size() {
		return false, nil
	}
	a, b := make([]byte, 256<<10), make([]byte, 256<<10)
	for {
		n, errA := io.ReadFull(local, a)
		m, errB := io.ReadFull(obj, b[:n])
		if m != n || !bytes.Equal(a[:n], b[:m]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			// The local file is exhausted; the object must be too.
			var one [1]byte
			k, _ := obj.Read(one[:])
			return k == 0, nil
		}
		if errA != nil {
			return false, errA
		}
		if errB != nil {
			return false, errB
		}
	}
}

// StoreOnce stores the local file p under key like Store, except that an ErrExists for
// an object holding exactly the bytes of p counts as success (an earlier attempt stored
// it and died before cleaning up: recovery and retries are idempotent); the local file is
// then removed. An object with other bytes is a clash: the ErrExists error is returned
// and p is kept.
func StoreOnce(ctx context.Context, st Store, key, p string) error {
	err := st.Store(ctx, key, p)
	if err == nil || !errors.Is(err, ErrExists) {
		return err
	}
	if same, cerr := SameContent(ctx, st, key, p); cerr != nil || !same {
		return err
	}
	_ = os.Remove(p)
	return nil
}

// MaxClashes bounds the alternative keys StoreUnique tries for one object.
const MaxClashes = 999

// ClashKey returns alternative n (1, 2, ...) of key, for an object whose key another
// object holds: "_n" before the extension of its last element ("a/b.ts" → "a/b_1.ts").
func ClashKey(key string, n int) string {
	dir, base := "", key
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		dir, base = key[:i+1], key[i+1:]
	}
	stem, ext := base, ""
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		stem, ext = base[:i], base[i:]
	}
	return fmt.Sprintf("%s%s_%d%s", dir, stem, n, ext)
}

// StoreUnique stores the local file p under key, or, when another object holds key (two
// recordings rendered the same key: the default templates have no domain), under the
// first free alternative ClashKey(key, 1), (key, 2) ...; it returns the key used. Nothing
// is ever replaced, and neither recording fails. With sameIsOK an object holding exactly
// the bytes of p counts as this very file, stored by an earlier attempt (see StoreOnce),
// so a retry or a recovery finds the key it used before: the alternatives are tried in
// the same order every time.
func StoreUnique(ctx context.Context, st Store, key, p string, sameIsOK bool) (string, error) {
	k := key
	for n := 1; ; n++ {
		var err error
		if sameIsOK {
			err = StoreOnce(ctx, st, k, p)
		} else {
			err = st.Store(ctx, k, p)
		}
		if err == nil || !errors.Is(err, ErrExists) || n > MaxClashes {
			return k, err
		}
		k = ClashKey(key, n)
	}
}
