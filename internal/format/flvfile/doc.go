// Package flvfile writes one FLV recording file (format.Writer) and recovers one whose
// writer died.
//
// # Tags
//
// Tags are rebuilt from access units; the elementary-stream bytes are written unchanged:
//   - H.264: legacy codec id 7. An AVC sequence header (flv.MarshalAVCConfig from the
//     track's SPS/PPS), then one tag per access unit, NAL units with 4-byte lengths,
//     composition time PTS−DTS, frame type key/inter from AccessUnit.Key.
//   - H.265: Enhanced RTMP FourCC "hvc1" (what current encoders, servers and ffmpeg 6.1+
//     use; legacy id 12 is an unofficial CDN extension). SequenceStart with
//     flv.MarshalHEVCConfig, then CodedFrames carrying the composition time.
//   - MPEG-4 Part 2: legacy codec id 9 as ffmpeg -strict -1 writes it: a configuration
//     packet (type 0) holding Track.VideoConfig (empty if unknown; the VOS/VOL headers then
//     travel in-band in the first frame, as they came), then frames (type 1) with CTS.
//   - AAC: SoundFormat 10, AudioSpecificConfig packet, then raw frames.
//   - MP3: SoundFormat 2 with the rate index and stereo flag from the track.
//
// Timestamps are milliseconds from the first unit of the file (its DTS becomes 0), rounded
// (DTS and PTS separately, so CTS is exact to the millisecond), 32-bit with the extension
// byte, as FLV has them. The file starts on a video keyframe: everything before it, audio
// included, is dropped (audio-only files start at once). Discontinuity (a stitched
// resume) drops video until the next keyframe while audio goes on; the timeline needs no
// work here because timestamp repair already made it continuous.
//
// A parameter change cannot be signalled in a file players read with one sequence header,
// so SetTracks returns format.ErrNeedNewFile once media was written with different
// tracks (the task then finishes this file and opens the next one). Equal parameters in
// new *Track values (a resumed publish) are adopted.
//
// # Working file and final file
//
// While recording, tags go to WorkDir/work.flv through a write buffer of pooled chunks
// (format.ArenaWriter) written, in one writev, once it holds 32 KiB (256 KiB offline,
// Config.NoSync) and whenever a second of media or of wall time has passed since the
// last flush, so a kill -9 loses at most about a second; nothing is fsync'd per tag. The
// kernel writes the data back as it ages (~30 s); when the publish ends (Pause, the
// stitch window starts) the buffer is flushed and Pause returns the working file's fsync
// for the caller to run, so a crash during the window loses nothing received. A sidecar,
// WorkDir/state.json, is written (atomically, fsync'd) before the first tag: the wall
// time of the first unit, the track description that onMetaData needs (size, frame rate,
// codecs, sample rate) and the size of the reservation.
//
// The working file is laid out as the final file: the FLV header, then a script tag
// reserved for onMetaData, then the tags. FLV puts the index first, so the space is set
// aside at the start: the size of the onMetaData of this file's tracks with a keyframes
// index of n entries (AMF0 numbers are fixed-size: 18 bytes per keyframe), n being
// Config.MaxDuration (the recording cycle) at one keyframe per second, plus a few,
// between 16 and 3600 (an hour of one-second GOPs; the reservation stays under 64 KiB;
// unknown MaxDuration: 3600). While recording it holds onMetaData with an empty array
// and padding, so the working file is itself a valid FLV (ffmpeg reads it cleanly); the
// padding is a hole in the file.
//
// Finish flushes the working file and finalizes in place: it indexes the working file,
// writes the real onMetaData into the reservation (only the bytes that differ), cuts off
// anything after the last complete tag, fsyncs the file and hands that same file to
// storage.Store (for local storage a link(2)); the tags are never copied. What the
// metadata leaves of the reservation is padding inside the script tag, after the array:
// AMF0 strings of zeros (nulls for the last one or two bytes), so the tag body stays a
// sequence of complete AMF0 values; ffmpeg, ffprobe and players read the name and the
// array and go on to the next tag. A keyframes index that does not fit (keyframes more
// often than once a second, or a file longer than the cycle or an hour) is thinned
// rather than making the finalization copy the file: it lists every k-th keyframe from
// the first, k the smallest step that fits, so seeking stays possible at a coarser grain
// (it is left out if fewer than two entries would fit; never with the sizes above).
//
// onMetaData is an ECMA array as ffmpeg writes it, with duration, width, height,
// framerate, videocodecid (the FourCC as a number for hvc1, per Enhanced RTMP),
// videodatarate, audiocodecid, audiodatarate, audiosamplerate, stereo, filesize,
// hasVideo/hasAudio/hasKeyframes and a keyframes object {times, filepositions} (seconds;
// offsets of the keyframe tags in the final file, which are their offsets in the working
// file) for seeking.
//
// A working directory written before reservations existed (its sidecar has no reserve)
// is finalized as it was then: WorkDir/final.flv is built from the FLV header, an
// onMetaData tag and the working file's tags copied behind it (copy_file_range), fsync'd
// and stored. There the tags' start depends on the size of onMetaData, which the
// positions and filesize are part of; the size settles at the second encoding (the loop
// checks it), and an index that would exceed the 16 MiB tag limit is left out.
//
// The media duration (Duration, Result.Duration, onMetaData duration) is the end of the
// last presented frame of either track: its greatest PTS plus that track's last DTS step
// (or a nominal frame duration when it has a single frame), from timestamp 0.
//
// # Recovery
//
// Finish and Recover share one path. Recover reads only the directory: the working file
// is read with flv.Reader and its tags indexed (the reservation is a script tag like any
// other and its content is never read, so a torn write into it does not matter). Finish
// uses the index its Writer kept while writing, which is the same (the tests compare
// them), and scans the file only after a write error. A tag
// counts only when its own PreviousTagSize is seen to match (for the last tag it is read
// directly), so a tag cut short, or whose end never reached the disk (zero-filled after a
// power loss), is dropped along with anything after it. The final key, size and
// duration are journaled in the sidecar before the file is stored: Recover uses the key
// if an interrupted Finish (or Recover) had chosen one, else key(start + duration). The
// same working file always yields the same bytes, and an ErrExists for an object with
// exactly those bytes counts as stored by the earlier attempt. Since the working file
// itself is stored (and so gone once stored), a sidecar with a journaled key and no
// working file means an earlier attempt stored it and stopped before the cleanup: the
// journaled result is returned. So Recover is idempotent; the sidecar is removed first,
// so after the cleanup there is nothing to recover (ErrNothingToRecover).
//
// Finishing costs a write of onMetaData, an fsync of what writeback has not written yet,
// two small journal writes and the store (a link); Recover also reads the working file.
package flvfile
