package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/media"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/testmedia"
)

// esInfo is what an FLV file carries, read with our own reader and demuxer.
type esInfo struct {
	video, audio media.Codec
	frames       [][]byte // video: VCL NAL units (H.264/H.265) or whole frames (MPEG-4 Part 2)
	audioFrames  [][]byte
	duration     time.Duration
}

func readFLVMedia(t *testing.T, path string) esInfo {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := flv.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var info esInfo
	var first, end time.Duration
	started := false
	var lastV, lastA, dV, dA time.Duration
	d := media.Demuxer{
		OnTracks: func(v, a *media.Track) {
			if v != nil {
				info.video = v.Codec
			}
			if a != nil {
				info.audio = a.Codec
			}
		},
		OnAccessUnit: func(au *media.AccessUnit) {
			if !started {
				if au.Track.Codec.IsVideo() && !au.Key {
					return
				}
				if !au.Track.Codec.IsVideo() && info.video != "" {
					return
				}
				first, started = au.DTS, true
			}
			if au.Track.Codec.IsVideo() {
				if au.DTS > lastV {
					dV = au.DTS - lastV
				}
				lastV = au.DTS
				end = max(end, lastV+dV)
				if au.NALUs != nil {
					for _, n := range au.NALUs {
						if isVCL(au.Track.Codec, n) {
							info.frames = append(info.frames, bytes.Clone(n))
						}
					}
				} else {
					info.frames = append(info.frames, bytes.Clone(au.Data))
				}
			} else if au.DTS >= first {
				if au.DTS > lastA {
					dA = au.DTS - lastA
				}
				lastA = au.DTS
				end = max(end, lastA+dA)
				info.audioFrames = append(info.audioFrames, bytes.Clone(au.Data))
			}
		},
	}
	for {
		tag, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d.WriteTag(tag)
	}
	d.Flush()
	info.duration = end - first
	return info
}

func isVCL(c media.Codec, n []byte) bool {
	if len(n) == 0 {
		return false
	}
	if c == media.H264 {
		typ := n[0] & 0x1f
		return typ >= 1 && typ <= 5
	}
	return (n[0]>>1)&0x3f < 32 // H.265 VCL NAL unit types 0–31
}

// outputFrames extracts the video elementary stream of a recording with ffmpeg.
func outputFrames(t *testing.T, path string, c media.Codec) ([][]byte, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "es")
	args := []string{"-v", "error", "-y", "-i", path, "-map", "0:v:0", "-c:v", "copy"}
	switch c {
	case media.H264:
		args = append(args, "-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	case media.H265:
		args = append(args, "-bsf:v", "hevc_mp4toannexb", "-f", "hevc", out)
	default:
		args = append(args, "-f", "m4v", out)
	}
	mustRun(t, "ffmpeg", args...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if c == media.MPEG4Video {
		return nil, b
	}
	var nalus [][]byte
	for _, n := range splitAnnexB(b) {
		if isVCL(c, n) {
			nalus = append(nalus, n)
		}
	}
	return nalus, b
}

var ffprobeCodec = map[media.Codec]string{media.H264: "h264", media.H265: "hevc", media.MPEG4Video: "mpeg4", media.AAC: "aac", media.MP3: "mp3"}

// TestCodecFormatMatrix records every supported video × audio codec pair into every
// format and checks each output: clean decode, codecs, duration, elementary-stream bytes.
// HEVC is pushed with our Go publisher in both signallings (legacy FLV codec id 12 and
// Enhanced RTMP hvc1): Debian's ffmpeg 5.1 cannot put HEVC into FLV.
func TestCodecFormatMatrix(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	videos := []string{testmedia.H264, testmedia.H265, testmedia.H265Legacy, testmedia.MPEG4}
	audios := []string{testmedia.AAC, testmedia.MP3}
	s := startServer(t, t.TempDir(), `
rules:
  - domainName: "*"
    appName: a
    delayTime: 15
    recordFormats:
      - format: m3u8
        sliceDuration: 5
      - format: flv
      - format: mp4
  - domainName: "*"
    appName: b
    delayTime: 15
    recordFormats:
      - format: cmaf
        sliceDuration: 5
`)
	dir := t.TempDir()
	sources := map[string]esInfo{}
	for _, v := range videos {
		for _, a := range audios {
			src, err := testmedia.MakeFLV(dir, testmedia.Spec{Video: v, Audio: a, Seconds: 6, Width: 320, Height: 240, FPS: 25, GOP: 25})
			if err != nil {
				t.Fatal(err)
			}
			name := v + "_" + a
			sources[name] = readFLVMedia(t, src)
			for _, app := range []string{"a", "b"} {
				if _, err := rtmp.PublishFile(context.Background(), s.rtmpURL(app, name), src, false, rtmp.PublishOptions{}); err != nil {
					t.Fatalf("push %s to %s: %v", name, app, err)
				}
			}
		}
	}
	s.waitIdle()
	s.stop()
	s.start()
	for name, src := range sources {
		for _, format := range []string{"m3u8", "flv", "mp4", "cmaf"} {
			app := "a"
			if format == "cmaf" {
				app = "b"
			}
			t.Run(name+"/"+format, func(t *testing.T) {
				recs := s.recordings(fmt.Sprintf("app=%s&stream=%s&format=%s", app, name, format))
				if len(recs) != 1 || recs[0].Status != "done" {
					t.Fatalf("want one generated %s file, got %+v", format, recs)
				}
				r := recs[0]
				if want := string(src.video) + "," + string(src.audio); r.Codecs != want || r.Width != 320 || r.Height != 240 {
					t.Fatalf("catalog row: codecs %q %dx%d, want %q 320x240", r.Codecs, r.Width, r.Height, want)
				}
				path := s.filePath(r.Key)
				if format == "flv" && src.video != media.H264 {
					// ffmpeg 5.1 reads neither Enhanced-RTMP HEVC nor codec id 9 in FLV:
					// read the recording back with our reader and compare every frame.
					got := readFLVMedia(t, path)
					if got.video != src.video || got.audio != src.audio {
						t.Fatalf("codecs %s,%s", got.video, got.audio)
					}
					if math.Abs((got.duration - src.duration).Seconds()) > 0.1 {
						t.Fatalf("duration %v, pushed %v", got.duration, src.duration)
					}
					sameNALUs(t, src.frames, got.frames)
					sameNALUs(t, src.audioFrames, got.audioFrames)
					return
				}
				decodeClean(t, path)
				probe := mustRun(t, "ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", path)
				for _, c := range []media.Codec{src.video, src.audio} {
					if !strings.Contains(probe, ffprobeCodec[c]) {
						t.Fatalf("ffprobe streams %q lack %s", probe, ffprobeCodec[c])
					}
				}
				if got := probeDuration(t, path); math.Abs(got-src.duration.Seconds()) > 0.1 {
					t.Fatalf("duration %.3f s, pushed %.3f s", got, src.duration.Seconds())
				}
				nalus, raw := outputFrames(t, path, src.video)
				if src.video == media.MPEG4Video {
					// Every pushed frame appears, in order and intact, in the recorded stream
					// (a writer may repeat the VOL configuration before key frames).
					pos := 0
					for i, f := range src.frames {
						j := bytes.Index(raw[pos:], f)
						if j < 0 {
							t.Fatalf("MPEG-4 frame %d (%d bytes) not found in order in the recording", i, len(f))
						}
						pos += j + len(f)
					}
					return
				}
				sameNALUs(t, src.frames, nalus)
			})
		}
	}
}
