package ffmpeg

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Info is what ffprobe says about a media file or playlist.
type Info struct {
	Duration   time.Duration
	Width      int
	Height     int
	FPS        float64 // average frame rate of the first video stream
	VideoCodec string  // e.g. "h264"
	AudioCodec string  // e.g. "aac"
	// Bitrate is the container's bit/s as ffprobe reports it (0 if it does not, as for
	// HLS playlists).
	Bitrate int64
}

type probeOut struct {
	Streams []struct {
		CodecType    string `json:"codec_type"`
		CodecName    string `json:"codec_name"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		AvgFrameRate string `json:"avg_frame_rate"`
		RFrameRate   string `json:"r_frame_rate"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
		BitRate  string `json:"bit_rate"`
	} `json:"format"`
}

// Probe runs ffprobe (bin, FFprobe if empty) on input, a path or URL.
func Probe(ctx context.Context, bin, input string) (Info, error) {
	if bin == "" {
		bin = FFprobe
	}
	cmd := Command(ctx, bin, "-v", "error", "-show_entries",
		"stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate:format=duration,bit_rate",
		"-of", "json", input)
	tail := NewTail(DefaultTailLines)
	cmd.Stderr = tail
	b, err := cmd.Output()
	if err != nil {
		return Info{}, fmt.Errorf("ffprobe %s: %w; last lines: %s", input, err, tail.String())
	}
	var p probeOut
	if err := json.Unmarshal(b, &p); err != nil {
		return Info{}, fmt.Errorf("ffprobe %s: %w", input, err)
	}
	var in Info
	if d, err := strconv.ParseFloat(p.Format.Duration, 64); err == nil {
		in.Duration = time.Duration(d * float64(time.Second))
	}
	in.Bitrate, _ = strconv.ParseInt(p.Format.BitRate, 10, 64)
	for _, s := range p.Streams {
		switch s.CodecType {
		case "video":
			if in.VideoCodec != "" {
				continue
			}
			in.VideoCodec, in.Width, in.Height = s.CodecName, s.Width, s.Height
			in.FPS = rate(s.AvgFrameRate)
			if in.FPS == 0 {
				in.FPS = rate(s.RFrameRate)
			}
		case "audio":
			if in.AudioCodec == "" {
				in.AudioCodec = s.CodecName
			}
		}
	}
	return in, nil
}

// PacketBytes sums the packet sizes of one stream ("v:0", "a:0") of input: with the
// duration it gives the stream's own bitrate, which containers like MPEG-TS do not state.
func PacketBytes(ctx context.Context, bin, input, stream string) (int64, error) {
	if bin == "" {
		bin = FFprobe
	}
	cmd := Command(ctx, bin, "-v", "error", "-select_streams", stream, "-show_entries", "packet=size", "-of", "csv=p=0", input)
	b, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("ffprobe %s: %w", input, err)
	}
	var n int64
	for _, l := range strings.Fields(string(b)) {
		v, err := strconv.ParseInt(strings.TrimSuffix(l, ","), 10, 64)
		if err == nil {
			n += v
		}
	}
	return n, nil
}

// rate parses "30000/1001".
func rate(s string) float64 {
	n, d, ok := strings.Cut(s, "/")
	num, err := strconv.ParseFloat(n, 64)
	if err != nil {
		return 0
	}
	if !ok {
		return num
	}
	den, err := strconv.ParseFloat(d, 64)
	if err != nil || den == 0 {
		return 0
	}
	return num / den
}
