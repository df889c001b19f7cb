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
// While recording, tags go to WorkDir/work.flv (FLV header, tags with their
// PreviousTagSize) through a 64 KiB bufio.Writer. It is handed to the OS whenever a
// second of media or of wall time has passed since the last flush, so a kill -9 loses at
// most about a second; nothing is fsync'd per tag. A sidecar, WorkDir/state.json, is
// written (atomically, fsync'd) before the first tag: the wall time of the first unit and
// the track description that onMetaData needs (size, frame rate, codecs, sample rate).
//
// Finish flushes the working file and finalizes: it indexes the working file, writes
// WorkDir/final.flv (FLV header; an onMetaData script tag; the tags copied from the
// working file), fsyncs it and hands it to storage.Store, then removes the working files.
// onMetaData is an ECMA array as ffmpeg writes it, with duration, width, height,
// framerate, videocodecid (the FourCC as a number for hvc1, per Enhanced RTMP),
// videodatarate, audiocodecid, audiodatarate, audiosamplerate, stereo, filesize,
// hasVideo/hasAudio/hasKeyframes and a keyframes object {times, filepositions} (seconds;
// offsets of the keyframe tags in the final file) for seeking. Where the tags start
// depends on the size of onMetaData, which the positions and filesize are part of; AMF0
// numbers are fixed-size doubles, so the size settles at the second encoding (the loop
// checks it). An index that would exceed the 16 MiB tag limit (about 900 000 keyframes) is
// left out.
//
// The media duration (Duration, Result.Duration, onMetaData duration) is the end of the
// last presented frame of either track: its greatest PTS plus that track's last DTS step
// (or a nominal frame duration when it has a single frame), from timestamp 0.
//
// # Recovery
//
// Finish and Recover share one path that reads only the directory: the working file is
// read with flv.Reader and its tags indexed. A tag counts only when its own
// PreviousTagSize is seen to match (for the last tag it is read directly), so a tag cut
// short, or whose end never reached the disk (zero-filled after a power loss), is
// dropped along with anything after it. The final key is journaled in the sidecar before
// the file is stored: Recover uses it if an interrupted Finish (or Recover) had chosen
// one, else key(start + duration). The same working file always yields the same bytes,
// and an ErrExists for an object with exactly those bytes counts as stored by the earlier
// attempt, so Recover is idempotent; the sidecar is removed first, so after the cleanup
// there is nothing to recover (ErrNothingToRecover).
//
// Finishing costs a sequential read of the working file (usually still in the page
// cache) and a copy: FLV puts the index first, so the final file is necessarily a second
// file.
package flvfile
