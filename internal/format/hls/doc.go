// Package hls writes one HLS recording file: MPEG-TS segments plus an m3u8 playlist.
//
// # Model
//
// A recording "file" of format m3u8 is one VOD playlist and the segments it lists. The
// recording task creates one Writer per file, announces the tracks with SetTracks, feeds
// access units with WriteAU, marks stitched resumes with Discontinuity and ends the file
// with Finish. After a crash, Recover turns the writer's working directory into the same
// kind of stored file.
//
// Segmenting, the timeline (EXTINF from DTS), storing with retries, the journal, the live
// EVENT playlist, the VOD playlist with relative URIs and the recovery skeleton are shared
// with the cmaf format in package segment (see its documentation); this package is the
// MPEG-TS muxer (a segment.Muxer) and the MPEG-TS side of recovery. Every segment starts
// with PAT/PMT and an IDR/IRAP picture preceded by its parameter sets.
//
// # Timeline
//
// The MPEG-TS timestamps written are not the input ones: every segment is mapped onto
// the playlist timeline, TS time = 1 s + (sum of the previous EXTINF durations) +
// (DTS − segment's first DTS). So the TS timeline is continuous and monotonic across
// discontinuities too (input timestamps that restart at zero after a re-publish do not
// go backwards in the output), the sum of EXTINF equals the TS duration, and the 1 s
// offset keeps PCR (which is written 100 ms below DTS) positive. The 90 kHz
// values wrap naturally at 33 bits, as MPEG-TS requires.
//
// # Muxing
//
// The MPEG-TS packetizer is hand-written (tsmux.go) for speed: a CPU profile of livrec
// serve recording 100 streams of 1.2 Mbit/s to HLS showed about 28% of the CPU in
// mediacommon's mpegts.Writer and the go-astits muxer below it (a bit-level writer and
// several allocations per access unit). The packetizer writes whole bytes into one
// reused buffer, hands each PES to the io.Writer in one piece and allocates nothing per
// access unit in the steady state; it produces byte for byte what mediacommon wrote
// (a test checks this): PAT and PMT (PIDs 0 and 0x1000, elementary streams from PID 256,
// video first), PAT/PMT again before every random-access PES of the PCR stream and after
// every 40 PES, PCR 100 ms below DTS on every keyframe and every third PES of the PCR
// stream (the first stream written: video, or audio for audio-only files), unbounded
// video PES, bounded audio PES, and stuffing in the adaptation field of the last packet.
//
// One packetizer state exists per track set. It writes through a switchable io.Writer
// that points at the current segment's buffered file, so continuity counters run on
// across segment boundaries; each segment begins with an explicit PAT/PMT. H.264 and
// H.265 access units arrive without AUD and parameter sets: the writer prepends an AUD
// and inserts SPS/PPS (and VPS) before every keyframe, and writes the NALUs with 4-byte
// Annex-B start codes. Contiguous audio frames are batched, up to 100 ms, into one PES
// (as ffmpeg does): one PES per frame would waste a partly stuffed packet per frame and,
// for audio-only streams, repeat PAT/PMT before every frame (every audio PES is flagged
// as a random access point), tripling the size. MPEG-4 Part 2 keyframes get the track's
// VOS/VOL configuration prepended when they do not already start with it. AAC is written
// as ADTS (HE-AAC configurations are signalled as AAC-LC at the core rate, as ADTS
// requires); MP3 frames go in as MPEG-1 audio (stream type 3); MPEG-2/2.5 "LSF" MP3
// (sample rates below 32 kHz) is written the same way, as raw audio PES, and the PMT
// still says MPEG-1 audio, stream type 3, which is what ffmpeg writes for such streams
// too.
//
// # Recovery
//
// Recover reads the journal, stores complete segments that were not stored yet, cuts the
// partial current segment at its last complete PES (it truncates to whole 188-byte
// packets, scans the packets by hand, and drops every PES that is not provably complete,
// including the last unbounded video PES), measures it from its PES timestamps, stores it
// and then the VOD playlist (for audio-only streams the partial segment's last PES holds a
// batch of frames, so its duration is estimated from the previous batch spacing, within
// about 100 ms). It is idempotent: the final state is journaled before the
// playlist is stored, and an ErrExists for an object whose bytes equal the local file is
// taken as "already stored by an earlier attempt".
package hls
