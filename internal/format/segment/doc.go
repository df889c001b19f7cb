// Package segment is the format-independent part of the segmented recording formats (hls:
// MPEG-TS segments, cmaf: fMP4 segments): one recording *file* is a VOD playlist and the
// segments (and initialization segments) it lists. The container-specific part is a
// Muxer; Writer does the rest.
//
// # Segmenting and timeline
//
// A segment starts on an access unit that makes it decodable on its own: a video keyframe
// (or, for audio-only streams, any audio frame). Media before the first keyframe is
// dropped, audio included. A segment is cut at the first keyframe whose DTS is at least
// SliceDuration after the segment's first DTS; audio-only streams are cut on time. A
// track-set change (SetTracks with different parameters) or a stitched resume
// (Discontinuity) ends the segment at the next access unit that can open one, and the new
// segment carries #EXT-X-DISCONTINUITY. Identical parameters re-announced change nothing.
// After a resume the audio until the keyframe goes on in the open segment when its
// timestamps continue that segment (so a stitch loses no sound); when they restart it is
// dropped. The common dropping rules are format.Gate's.
//
// Durations come from input DTS, never from the wall clock. A segment followed by another
// one of the same continuous run lasts "next first DTS − first DTS"; the last segment of a
// run (before a resume, or at Finish) lasts until the end of its last frame of either
// track (last DTS plus the last DTS delta), so gaps across a resume are not counted and
// the next run starts after every unit written. The Muxer receives each unit's DTS on the
// output timeline: the sum of the previous EXTINF durations plus the unit's offset in its
// segment, so the output is continuous and monotonic across resumes (input timestamps may
// restart at zero) and the sum of EXTINF equals the media duration.
//
// # Storage, journal and playlists
//
// Each segment grows in a file in the working directory through a bufio.Writer (the Muxer
// may Flush it to the OS at any time). When complete it is flushed, fsync'd and handed to
// storage.Store; an initialization segment (Config.InitKey set) is written atomically when
// its track set first opens a segment and stored with the segments. Config.NoSync (offline
// conversion) leaves out every fsync: segments, journal and playlists. A failed store keeps
// the local file and is retried at the next segment boundary and at Finish. A key that
// another object holds (two recordings rendered the same key) is never overwritten: the
// object goes to the first free alternative (storage.ClashKey: "_1", "_2" before the
// extension), and the playlists list it there.
//
// At every segment boundary the writer atomically rewrites (temp file, fsync, rename)
// journal.json: initialization segments, segments done (key, duration, wall start,
// discontinuity, bytes, map, stored or not), the current segment (file, key, wall start,
// output start time) and a pending-discontinuity flag. When something was stored it also
// rewrites live.m3u8, an EVENT playlist of the longest stored prefix (a segment counts
// once its initialization segment is stored too) with URIs from Config.SegmentURI. Both
// rewrites are O(number of segments), fine for the thousands of segments livrec files have.
//
// Recover reads the journal, stores what was not stored, lets the format cut the partial
// current segment after its last complete unit (CutFunc), stores it and then the VOD
// playlist. It is idempotent: the final state is journaled before the playlist is stored,
// and an ErrExists for an object whose bytes equal the local file is taken as "already
// stored by an earlier attempt".
//
// Playlists are written by hand, in exactly the form gohlslib's playlist.Media.Marshal
// produces (a test checks it): #EXT-X-VERSION:3, float EXTINF with five decimals,
// #EXT-X-MEDIA-SEQUENCE:0, #EXT-X-TARGETDURATION the ceiling of the longest EXTINF as
// printed (RFC 8216 4.3.3.1). gohlslib has a single playlist-level EXT-X-MAP; fMP4 files
// need one before every segment whose initialization segment changes, so playlists with
// maps are written the same way plus those tags, as version 6 (RFC 8216 section 7). In the
// final playlist, URIs are relative to the playlist's directory and percent-encoded per
// path segment (RelativeURI).
//
// Package segtest holds the test helpers the format packages share.
package segment
