// Package cmaf writes one CMAF recording file: fragmented-MP4 media segments, their
// initialization segments and an m3u8 playlist with #EXT-X-MAP. It is the fMP4 twin of
// package hls: segmenting (cut on a video keyframe once SliceDuration is reached,
// audio-only on time, the first segment starting at the first keyframe), exact EXTINF
// from DTS, the journal, storing with retries, the live EVENT playlist and the VOD
// playlist with relative URIs all come from package segment; this package is the fMP4
// segment.Muxer and the fMP4 side of recovery.
//
// # Boxes
//
// An initialization segment is mediacommon's fmp4.Init (moov with one track per kind:
// video ID 1 at 90 kHz, audio at its sample rate) behind a hand-written ftyp: major brand
// 'cmfc', compatible 'cmfc', 'iso6', 'isom', 'mp41'. mediacommon writes a fixed ftyp
// (mp42/mp41/isom/hlsf) that cannot be configured, so its 32-byte ftyp is replaced. Codecs:
// H.264 (avc1 + avcC), H.265 (hvc1 + hvcC), MPEG-4 Part 2 (mp4v + esds with the VOS/VOL
// configuration, taken from the track or from the headers before the first VOP of the
// opening keyframe), AAC (mp4a + esds with the AudioSpecificConfig) and MP3 (mp4a, object
// type 0x6B). mediacommon writes a placeholder 800x600 picture size for mp4v; the track's
// size, when known, is patched into the sample entry and tkhd.
//
// Every media segment starts with a hand-written styp (major 'cmfs', compatible 'cmfs',
// 'msdh'), then one or more fragments (package moof: moof with mfhd and a traf per track
// holding tfhd default-base-is-moof, tfdt v1, trun v1; then mdat, the payloads track
// after track). 'msix' is not claimed because
// no sidx is written. The mfhd sequence numbers run over the whole file.
//
// # Samples and timing
//
// A sample's duration is the next sample's decode time minus its own, so each track holds
// one sample back until the next one arrives. When a segment ends, the held video sample
// lasts until the next segment's start (continuous run) or one frame (the last DTS delta)
// at the end of a run; the held audio sample lasts as long as the previous one. Decode
// times are the segment package's output timeline in the track's time scale, so tfdt is
// continuous within a run, a resume starts after the end of the previous run's last frame
// of either track (no gap, no overlap), and the EXTINF sum equals the media duration.
// Audio decode times run on a sample counter (1024 per AAC frame, the frame's sample
// count for MP3) as long as the input stays within half a frame of it, so millisecond
// (RTMP) timestamps do not make audio durations jitter; a larger deviation resynchronizes
// on the input. Video composition offsets are PTS − DTS (trun version 1; PTS ≥ DTS, so
// they are never negative); non-keyframes are flagged sample_is_non_sync_sample. H.264 and
// H.265 samples are the access unit's NAL units with 4-byte length prefixes, byte for
// byte; other codecs' frames are copied as they are.
//
// # Track changes
//
// A parameter change (SetTracks with different parameters) makes a new initialization
// segment, stored under Config.InitKey(n+1), and the next segment is preceded by
// #EXT-X-DISCONTINUITY and a new #EXT-X-MAP. ffmpeg's HLS demuxer (5.1, and the mov
// demuxer behind it) skips a second moov and keeps decoding with the first
// initialization segment's parameter sets, so, for H.264 and H.265, the keyframe that
// opens each segment under a replacement initialization segment also carries that
// segment's parameter sets in-band (the same ones as its sample entry; mediacommon's hvcC
// does not set array_completeness, so hvc1 permits this). The first initialization
// segment's segments carry none. A change of audio sample rate is signalled the same way
// but ffmpeg keeps the first time scale; players that honour EXT-X-MAP changes (hls.js,
// AVPlayer) handle both.
//
// # Crash safety
//
// A segment is written as fragments of at most FragmentDuration (500 ms) of media: each
// completed fragment is appended to the segment's working file and flushed to the
// operating system (no fsync; the segment is fsync'd when complete). After kill -9 the
// file therefore holds the media up to about 0.5 s (plus one held frame) before the kill;
// a torn last write loses at most one more fragment. Recover keeps the styp and the
// complete moof+mdat pairs of the partial segment (parsing box headers, truncating after
// the last complete pair), measures it from the fragments (tfdt plus sample durations of
// the last fragment of either track, read with the initialization segment's time scales,
// from the working file or the stored object) and stores it and the VOD playlist.
//
// # Costs
//
// A fragment's head is laid out by hand (package moof) and its payloads are written from
// the tracks' arenas: the 0.5 s fragment is held once, and nothing is allocated per
// access unit. The arenas are 16 KiB chunks from a pool of the process (format.Arena), so
// a stream holds about its current fill, not its largest fragment; the access unit held
// back for its duration is in them too, and a fragment goes to the segment file in one
// writev (the muxer buffers its output: the segment gets no write buffer). At 1000
// streams of 1.5 Mbit/s this took RSS from 355 to 242 KiB per stream.
// (mediacommon's fmp4.Part.Marshal, used before, copied the fragment into one buffer
// with its boxes — the fragment held twice — and went through go-mp4's reflection,
// about 65 allocations per access unit.)
package cmaf
