package segment

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/livrec/livrec/internal/storage"
)

// MaxPlaylistBytes bounds a stored playlist read back (a 6 h file of 5 s segments is
// about 200 KiB).
const MaxPlaylistBytes = 16 << 20

// StoredSegment is one segment of a stored VOD playlist, its URI resolved to an object key.
type StoredSegment struct {
	Key           string
	Duration      time.Duration
	Discontinuity bool
}

// StoredPlaylist is a stored playlist read back: what other tools (index files, merges,
// a deleter) need to know about the objects it lists.
type StoredPlaylist struct {
	Key      string
	Segments []StoredSegment
	// Maps are the keys of the initialization segments (EXT-X-MAP), each once, in order.
	Maps []string
	// Endlist: the playlist is complete (EXT-X-ENDLIST).
	Endlist bool
}

// Duration is the sum of the segment durations.
func (p *StoredPlaylist) Duration() time.Duration {
	var d time.Duration
	for _, s := range p.Segments {
		d += s.Duration
	}
	return d
}

// Objects returns the keys of every object the playlist references (initialization
// segments, then segments), each once; the playlist's own key is not included.
func (p *StoredPlaylist) Objects() []string {
	seen := make(map[string]bool, len(p.Segments)+len(p.Maps))
	out := make([]string, 0, len(p.Segments)+len(p.Maps))
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, m := range p.Maps {
		add(m)
	}
	for _, s := range p.Segments {
		add(s.Key)
	}
	return out
}

// ReadPlaylist reads the media playlist stored under key.
func ReadPlaylist(ctx context.Context, store storage.Store, key string) (*StoredPlaylist, error) {
	obj, err := store.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("playlist %s: %w", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, MaxPlaylistBytes+1))
	if err != nil {
		return nil, fmt.Errorf("playlist %s: %w", key, err)
	}
	if len(b) > MaxPlaylistBytes {
		return nil, fmt.Errorf("playlist %s: larger than %d bytes", key, MaxPlaylistBytes)
	}
	return ParsePlaylist(key, b)
}

// ParsePlaylist parses the media playlist b stored under key (gohlslib's parser) and
// resolves its URIs against the key's directory. Only relative URIs that stay inside the
// store are accepted: livrec's playlists reference their own objects, and a key outside
// would let a crafted playlist name objects it does not own (a deleter keeps or removes
// what this returns).
func ParsePlaylist(key string, b []byte) (*StoredPlaylist, error) {
	var m playlist.Media
	if err := m.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("playlist %s: %w", key, err)
	}
	dir := path.Dir(key)
	p := &StoredPlaylist{Key: key, Endlist: m.Endlist}
	for i, s := range m.Segments {
		k, err := resolveURI(dir, s.URI)
		if err != nil {
			return nil, fmt.Errorf("playlist %s: segment %d: %w", key, i, err)
		}
		p.Segments = append(p.Segments, StoredSegment{Key: k, Duration: s.Duration, Discontinuity: s.Discontinuity})
	}
	// gohlslib keeps one EXT-X-MAP; livrec's fMP4 playlists may carry one per track set.
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#EXT-X-MAP:") {
			continue
		}
		uri, ok := quotedAttr(line[len("#EXT-X-MAP:"):], "URI")
		if !ok {
			return nil, fmt.Errorf("playlist %s: EXT-X-MAP without URI", key)
		}
		k, err := resolveURI(dir, uri)
		if err != nil {
			return nil, fmt.Errorf("playlist %s: EXT-X-MAP: %w", key, err)
		}
		if !seen[k] {
			seen[k] = true
			p.Maps = append(p.Maps, k)
		}
	}
	return p, nil
}

// resolveURI turns a playlist-relative URI into an object key.
func resolveURI(dir, uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.IsAbs() || u.Host != "" || u.Path == "" || strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("URI %q is not a relative path", uri)
	}
	k := path.Clean(path.Join(dir, u.Path))
	if k == ".." || strings.HasPrefix(k, "../") || strings.HasPrefix(k, "/") {
		return "", fmt.Errorf("URI %q leaves the store", uri)
	}
	return k, nil
}

// quotedAttr returns the value of the quoted attribute name in an attribute list.
func quotedAttr(list, name string) (string, bool) {
	for list != "" {
		list = strings.TrimLeft(list, " ,")
		eq := strings.IndexByte(list, '=')
		if eq < 0 {
			return "", false
		}
		attr := strings.TrimSpace(list[:eq])
		list = list[eq+1:]
		var val string
		if strings.HasPrefix(list, `"`) {
			end := strings.IndexByte(list[1:], '"')
			if end < 0 {
				return "", false
			}
			val, list = list[1:1+end], list[2+end:]
		} else {
			end := strings.IndexByte(list, ',')
			if end < 0 {
				end = len(list)
			}
			val, list = list[:end], list[end:]
		}
		if attr == name {
			return val, true
		}
	}
	return "", false
}
