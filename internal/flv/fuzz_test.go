package flv

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Seeds live in testdata/fuzz/FuzzX (committed); f.Add adds a few structural ones.

func FuzzVideoTagHeader(f *testing.F) {
	f.Add([]byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f})
	f.Add(AppendVideoExHeader(nil, true, VideoExCodedFrames, FourCCHEVC, 5))
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := ParseVideoTagHeader(body)
		if err != nil {
			return
		}
		if len(h.Data) > len(body) || !bytes.HasSuffix(body, h.Data) {
			t.Fatal("Data is not a suffix of the body")
		}
		_ = h.CodecDescription()
	})
}

func FuzzAudioTagHeader(f *testing.F) {
	f.Add([]byte{0xaf, 0, 0x12, 0x10})
	f.Add(AppendAudioExHeader(nil, AudioExSequenceStart, FourCCAAC))
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := ParseAudioTagHeader(body)
		if err != nil {
			return
		}
		if len(h.Data) > len(body) || !bytes.HasSuffix(body, h.Data) {
			t.Fatal("Data is not a suffix of the body")
		}
		_ = h.CodecDescription()
	})
}

func FuzzAVCConfig(f *testing.F) {
	f.Add([]byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xeb})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseAVCConfig(b)
		if err != nil {
			return
		}
		if c.LengthSize < 1 || c.LengthSize > 4 {
			t.Fatalf("length size %d", c.LengthSize)
		}
		rec, err := MarshalAVCConfig(c.SPS, c.PPS)
		if err != nil {
			return // e.g. SPS shorter than 4 bytes
		}
		c2, err := ParseAVCConfig(rec)
		if err != nil || len(c2.SPS) != len(c.SPS) || len(c2.PPS) != len(c.PPS) || !bytes.Equal(c2.SPS[0], c.SPS[0]) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzHEVCConfig(f *testing.F) {
	f.Add(make([]byte, 23))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseHEVCConfig(b)
		if err != nil {
			return
		}
		rec, err := MarshalHEVCConfig(c.VPS, c.SPS, c.PPS)
		if err != nil {
			return
		}
		c2, err := ParseHEVCConfig(rec)
		if err != nil || !bytes.Equal(c2.SPS[0], c.SPS[0]) || !bytes.Equal(c2.VPS[0], c.VPS[0]) || !bytes.Equal(c2.PPS[0], c.PPS[0]) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzMetadata(f *testing.F) {
	f.Add([]byte{0x02, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a', 0x08, 0, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseMetadata(b)
	})
}

func FuzzFileReader(f *testing.F) {
	f.Add([]byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		var tags []Tag
		for i := 0; ; i++ {
			tag, err := r.ReadTag()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			tag.Body = bytes.Clone(tag.Body)
			tags = append(tags, tag)
		}
		// What was read must survive a write/read round trip.
		var buf bytes.Buffer
		w, err := NewWriter(&buf, r.Header().HasAudio, r.Header().HasVideo)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			if err := w.WriteTag(tag); err != nil {
				t.Fatal(err)
			}
		}
		r2, err := NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for i := range tags {
			tag, err := r2.ReadTag()
			if err != nil || tag.Type != tags[i].Type || tag.Timestamp != tags[i].Timestamp || !bytes.Equal(tag.Body, tags[i].Body) {
				t.Fatalf("tag %d differs after round trip (%v)", i, err)
			}
		}
		if _, err := r2.ReadTag(); !errors.Is(err, io.EOF) || r2.Truncated() || r2.Mismatches != 0 {
			t.Fatal("rewritten file not clean")
		}
	})
}

// FuzzReader: the three ways of reading (reused buffer, FreshBodies, NewBytesReader) give
// the same tags, Truncated and Offset on any input.
func FuzzReader(f *testing.F) {
	var b bytes.Buffer
	w, _ := NewWriter(&b, true, true)
	w.WriteTag(Tag{Type: TagVideo, Timestamp: 40, Body: []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}})
	w.WriteTag(Tag{Type: TagAudio, Timestamp: 41, Body: []byte{0xaf, 1, 0x21}})
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:b.Len()-3])
	f.Fuzz(func(t *testing.T, in []byte) {
		type result struct {
			tags      []Tag
			truncated bool
			off       int64
		}
		read := func(mode int) (*result, error) {
			r, err := NewReader(bytes.NewReader(in))
			if mode == 2 {
				r, err = NewBytesReader(in)
			}
			if err != nil {
				return nil, err
			}
			r.FreshBodies = mode > 0
			res := &result{}
			for {
				tag, err := r.ReadTag()
				if err != nil {
					break
				}
				tag.Body = bytes.Clone(tag.Body)
				res.tags = append(res.tags, tag)
			}
			res.truncated, res.off = r.Truncated(), r.Offset()
			return res, nil
		}
		want, err := read(0)
		for mode := 1; mode <= 2; mode++ {
			got, err2 := read(mode)
			if (err == nil) != (err2 == nil) {
				t.Fatalf("mode %d: error %v, want %v", mode, err2, err)
			}
			if err != nil {
				continue
			}
			if len(got.tags) != len(want.tags) || got.truncated != want.truncated || got.off != want.off {
				t.Fatalf("mode %d: %d tags, truncated %v, offset %d; want %d, %v, %d", mode,
					len(got.tags), got.truncated, got.off, len(want.tags), want.truncated, want.off)
			}
			for i := range got.tags {
				g, w := got.tags[i], want.tags[i]
				if g.Type != w.Type || g.Timestamp != w.Timestamp || !bytes.Equal(g.Body, w.Body) {
					t.Fatalf("mode %d: tag %d differs", mode, i)
				}
			}
		}
	})
}
