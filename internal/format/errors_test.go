package format_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/format"
	"github.com/livrec/livrec/internal/format/cmaf"
	"github.com/livrec/livrec/internal/format/flvfile"
	"github.com/livrec/livrec/internal/format/hls"
	"github.com/livrec/livrec/internal/format/mp4"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/storage"
)

// Every writer reports an empty recording (no unit that can start the file: here a video
// frame that is not a keyframe) as format.ErrNoMedia, and misuse with the shared errors:
// the recording task tells them apart without knowing the format.
func TestSharedErrors(t *testing.T) {
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := func(int, time.Time) string { return "seg" } // never called: no segment opens
	writers := map[string]func(dir string) (format.Writer, error){
		"hls": func(dir string) (format.Writer, error) {
			w, err := hls.New(hls.Config{SliceDuration: time.Second, WorkDir: dir, SegmentKey: key, Store: st})
			return hlsFinish{w}, err
		},
		"cmaf": func(dir string) (format.Writer, error) {
			return cmaf.New(cmaf.Config{SliceDuration: time.Second, WorkDir: dir, SegmentKey: key,
				InitKey: func(n int) string { return "init" }, Store: st})
		},
		"mp4": func(dir string) (format.Writer, error) { return mp4.New(mp4.Config{WorkDir: dir, Store: st}) },
		"flv": func(dir string) (format.Writer, error) { return flvfile.New(flvfile.Config{WorkDir: dir, Store: st}) },
	}
	video := &media.Track{Codec: media.MPEG4Video}
	for name, newWriter := range writers {
		t.Run(name, func(t *testing.T) {
			w, err := newWriter(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			au := &media.AccessUnit{Track: video, Data: []byte{0, 0, 1, 0xb6, 0x40}}
			if err := w.WriteAU(au); !errors.Is(err, format.ErrNoTracks) {
				t.Errorf("WriteAU before SetTracks: %v, want format.ErrNoTracks", err)
			}
			if err := w.SetTracks(video, nil); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteAU(au); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Finish(context.Background(), "out"); !errors.Is(err, format.ErrNoMedia) {
				t.Errorf("Finish: %v, want format.ErrNoMedia", err)
			}
		})
	}
}

// hlsFinish adapts hls.Writer's Finish (it returns hls.Result) to format.Writer.
type hlsFinish struct{ *hls.Writer }

func (w hlsFinish) Finish(ctx context.Context, key string) (format.Result, error) {
	_, err := w.Writer.Finish(ctx, key)
	return format.Result{}, err
}
