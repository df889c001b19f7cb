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
// # Segmenting
//
// A segment starts on an access unit that makes it decodable on its own: a video keyframe
// (or, for audio-only streams, any audio frame). Media before the first keyframe is
// dropped, audio included, so every segment starts with PAT/PMT and an IDR/IRAP picture
// preceded by its parameter sets. A segment is cut at the first keyframe whose DTS is at
// least SliceDuration after the segment's first DTS; audio-only streams are cut on time at
// an audio frame. A track-set change (SetTracks with different parameters) or a stitched
// resume (Discontinuity) ends the segment at the next access unit that can open one, and
// the new segment carries #EXT-X-DISCONTINUITY.
//
// # Timeline
//
// Durations come from input DTS, never from the wall clock. A segment followed by another
// one of the same continuous run lasts "next first DTS − first DTS"; the last segment of a
// run (before a discontinuity, or at Finish) lasts "last DTS − first DTS + one frame",
// the frame duration being the last DTS delta of the leading track (video if present).
// Gaps across a stitched resume are therefore not counted.
//
// The MPEG-TS timestamps written are not the input ones: every segment is mapped onto
// the playlist timeline, TS time = 1 s + (sum of the previous EXTINF durations) +
// (DTS − segment's first DTS). So the TS timeline is continuous and monotonic across
// discontinuities too (input timestamps that restart at zero after a re-publish do not
// go backwards in the output), the sum of EXTINF equals the TS duration, and the 1 s
// offset keeps PCR (which mediacommon places 100 ms below DTS) positive. The 90 kHz
// values wrap naturally at 33 bits, as MPEG-TS requires.
//
// # Muxing
//
// One mediacommon mpegts.Writer exists per track set. It writes through a switchable
// io.Writer that points at the current segment's buffered file, so continuity counters
// run on across segment boundaries; each segment begins with an explicit PAT/PMT. H.264
// and H.265 access units arrive without AUD and parameter sets: the writer prepends an AUD
// itself (so mediacommon does not reallocate the NALU slice) and inserts SPS/PPS (and VPS)
// before every keyframe. Contiguous audio frames are batched, up to 100 ms, into one PES
// (as ffmpeg does): one PES per frame would waste a partly stuffed packet per frame and,
// for audio-only streams, repeat PAT/PMT before every frame (mediacommon flags each audio
// PES as a random access point), tripling the size. MPEG-4 Part 2 keyframes get the track's VOS/VOL configuration
// prepended when they do not already start with it. AAC is written as ADTS (HE-AAC
// configurations are signalled as AAC-LC at the core rate, as ADTS requires); MP3 frames
// go in as MPEG-1 audio; MPEG-2/2.5 "LSF" MP3 (sample rates below 32 kHz), which
// mediacommon's WriteMPEG1Audio refuses, is written as raw audio PES through WriteAC3,
// which adds no framing of its own (the PMT still says MPEG-1 audio, stream type 3, which
// is what ffmpeg writes for such streams too).
//
// # Storage, journal and live playlist
//
// Each segment grows in a file in the working directory through a bufio.Writer. When it
// is complete it is flushed, fsync'd and handed to storage.Store. A failed store keeps
// the local file and is retried at the next segment boundary and at Finish; ErrExists is
// reported as an error (livrec never overwrites) and the local file is kept as well.
//
// At every segment boundary the writer atomically rewrites (temp file, fsync, rename)
// journal.json: the segments done (key, duration, wall start, discontinuity, bytes,
// stored or not), the next sequence number, the current segment's file, key, wall start
// and discontinuity flag, and a pending-discontinuity flag. When a segment was stored it
// also rewrites live.m3u8, an EVENT playlist of the stored segments (the longest stored
// prefix, so the playlist only ever grows) with URIs from Config.SegmentURI, so an
// in-progress recording is playable. Both rewrites are O(number of segments), which is
// fine for the cycle lengths livrec uses (thousands of segments, not millions).
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
//
// # Playlists
//
// Playlists are produced with gohlslib's pkg/playlist (Media with PlaylistType VOD or
// EVENT, Endlist, Segments with Duration, URI and Discontinuity): its output was checked
// to be what is needed here: #EXT-X-VERSION:3, float EXTINF with five decimals,
// #EXT-X-MEDIA-SEQUENCE:0. #EXT-X-TARGETDURATION is the ceiling of the longest EXTINF as
// printed (RFC 8216 4.3.3.1). In the final playlist, segment URIs are relative to the
// playlist's directory and percent-encoded per path segment.
package hls
