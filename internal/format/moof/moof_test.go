package moof

import (
	"bytes"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// The fragment Append lays out, followed by the payloads, reads back with mediacommon's
// parser: every sample's duration, composition offset, sync flag and payload, each
// track's base time, the sequence number.
func TestAppendReadsBack(t *testing.T) {
	video := [][]byte{bytes.Repeat([]byte{1}, 5000), bytes.Repeat([]byte{2}, 700), bytes.Repeat([]byte{3}, 900)}
	audio := [][]byte{bytes.Repeat([]byte{4}, 300), bytes.Repeat([]byte{5}, 310)}
	tracks := []Track{
		{ID: 1, BaseTime: 90000, Samples: []Sample{
			{Size: 5000, Dur: 3000, CTS: 6000, Sync: true},
			{Size: 700, Dur: 3000, CTS: -3000},
			{Size: 900, Dur: 3001, CTS: 0},
		}},
		{ID: 2}, // no samples: left out
		{ID: 3, BaseTime: 44100, Samples: []Sample{{Size: 300, Dur: 1024, Sync: true}, {Size: 310, Dur: 1024, Sync: true}}},
	}
	b := Append([]byte("junk"), 7, tracks)[4:]
	for _, p := range append(video, audio...) {
		b = append(b, p...)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if len(parts) != 1 || parts[0].SequenceNumber != 7 || len(parts[0].Tracks) != 2 {
		t.Fatalf("parts: %+v", parts)
	}
	payloads := [][][]byte{video, audio}
	for i, want := range []Track{tracks[0], tracks[2]} {
		got := parts[0].Tracks[i]
		if got.ID != int(want.ID) || got.BaseTime != want.BaseTime || len(got.Samples) != len(want.Samples) {
			t.Fatalf("track %d: got id %d base %d %d samples, want %+v", i, got.ID, got.BaseTime, len(got.Samples), want)
		}
		for j, s := range got.Samples {
			w := want.Samples[j]
			if s.Duration != w.Dur || s.PTSOffset != w.CTS || s.IsNonSyncSample == w.Sync || !bytes.Equal(s.Payload, payloads[i][j]) {
				t.Errorf("track %d sample %d: got dur %d cts %d nonsync %v %d bytes, want %+v",
					i, j, s.Duration, s.PTSOffset, s.IsNonSyncSample, len(s.Payload), w)
			}
		}
	}
}
