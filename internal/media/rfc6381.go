package media

import (
	"fmt"
	"strings"
)

// RFC6381 returns the codecs string of the tracks (either may be nil) as HLS's CODECS
// attribute wants it, e.g. "avc1.64001f,mp4a.40.2". H.264 takes profile, constraints and
// level from the SPS; H.265 is the bare "hvc1" (players accept it; the full form needs
// the profile-tier-level syntax); a codec without a known form is left out.
func RFC6381(video, audio *Track) string {
	var out []string
	if video != nil {
		switch video.Codec {
		case H264:
			if len(video.SPS) >= 4 {
				out = append(out, fmt.Sprintf("avc1.%02x%02x%02x", video.SPS[1], video.SPS[2], video.SPS[3]))
			}
		case H265:
			out = append(out, "hvc1")
		case MPEG4Video:
			out = append(out, "mp4v.20")
		}
	}
	if audio != nil {
		switch audio.Codec {
		case AAC:
			aot := 2 // AAC-LC when the configuration is missing
			if len(audio.AudioConfig) > 0 {
				aot = int(audio.AudioConfig[0] >> 3)
			}
			out = append(out, fmt.Sprintf("mp4a.40.%d", aot))
		case MP3:
			out = append(out, "mp4a.40.34")
		}
	}
	return strings.Join(out, ",")
}
