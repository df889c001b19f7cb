// Package mp4 writes one progressive MP4 recording file: ftyp, moov, then mdat ("fast
// start": a browser can play and seek it over HTTP Range requests before it has the
// whole file).
//
// # Model
//
// The recording task creates one Writer per file, declares the tracks with SetTracks,
// feeds access units with WriteAU and ends the file with Finish, which stores it under
// its key. After a crash, Recover (in a new process) turns the writer's working
// directory into the same kind of stored file. Codecs: H.264 (avc1+avcC), H.265
// (hvc1+hvcC), MPEG-4 Part 2 (mp4v+esds carrying the VOS/VOL configuration), AAC
// (mp4a+esds, OTI 0x40) and MP3 (mp4a+esds, OTI 0x6B).
//
// # Never the recording in memory
//
// A progressive file needs the complete sample tables before the first media byte, so
// the media goes to a working file first: recording.fmp4 in Config.WorkDir, a fragmented
// MP4 (an init segment, then moof+mdat fragments). A fragment is cut when the units that
// arrived since the previous one span fragmentDuration (0.5 s of media time) and goes to
// the OS in one writev(2): its head, then each track's payloads straight from the
// track's arena; it is not fsync'd (the init segment and the journal are, at the start —
// on Config.Syncer when set, off the caller's goroutine — and the whole working file at
// Finish). What stays in memory is:
//
//   - the index: 12 bytes per sample (size with a non-sync bit, duration, composition
//     offset), kept in fixed blocks of 1024 entries, plus one 24-byte chunk record per
//     track and fragment (where the fragment's run of samples lies in the working file);
//   - the fragment being collected (at most about 0.5 s of payload, once: the arenas
//     the payloads are written from, in 16 KiB chunks from a pool of the process, so a
//     stream holds about its current fill, not its largest fragment) and one held-back
//     sample per track.
//
// Finish writes the last fragment, fsyncs the working file, computes the moov from the
// index and streams it to output.mp4 (two passes over the same code: a dry pass that
// only measures box sizes, then the real one, so even the moov is not built in memory),
// copies the payloads run by run from the working file into the mdat (copy_file_range
// where the kernel offers it), fsyncs, stores the file with Store.Store and removes the
// working files. The chunks of the progressive file are the fragments' runs, so audio
// and video are interleaved about every half second, and the mdat bytes are the
// working file's mdat payloads in order.
//
// # Timeline
//
// Sample durations are next DTS − DTS per track (a sample is held back until the next
// one of its track arrives; at Finish the last one gets the previous spacing).
// Timestamps are converted to ticks (90 kHz for video, the sample rate for audio) from
// one origin for all tracks, the first video DTS, so rounding never accumulates and the
// tracks stay aligned to a tick. PTS − DTS becomes the composition offset (ctts,
// version 1 only if one is negative).
//
// The file starts on a video keyframe: earlier video and all audio before it are
// dropped, and so is audio that ends before the first picture. The frame playing when
// the first picture appears is kept (flv and m3u8 keep it too, so the files of one push
// hold the same audio frames). Audio-only files start at the first frame. The
// presentation starts at the first picture: the video edit list (elst) skips the decoder
// delay of B-frames (media time = the first composition offset), and the audio edit list
// either skips the head of that first frame (media time > 0) or, when the first frame
// plays after the first picture, starts with an empty edit (less than one audio frame).
// So ffprobe reports start_time 0 for video, the true offset for audio, and A/V stay in
// sync. Duration is the longest track on that timeline.
//
// A Discontinuity (stitched resume) changes nothing in the timeline (the task's repaired
// timestamps continue without a gap, so the sample before the gap simply lasts longer);
// video waits for the next keyframe. A track change after media was written cannot be
// signalled in one MP4 file: SetTracks returns format.ErrNeedNewFile and the task rolls
// over to a new file. Identical parameters in new *Track values are accepted.
//
// # Crash safety
//
// journal.json (written atomically with fsync when the file starts, and again by Finish
// with the key) holds the wall-clock start time. Recover parses the working file with a
// streaming box scanner: the init segment, then every fragment whose moof and mdat are
// complete and whose runs lie inside that mdat; it stops at the first incomplete or
// malformed box (a kill in the middle of a write, or zeros after a power loss). It
// rebuilds the same index and writes the progressive file through the same code as
// Finish, so a Recover of a completely written working file yields the bytes Finish
// would have stored. The key is key(start + duration), unless the journal already names
// one. A kill -9 loses what was not yet written: at most the last fragment (about 0.5 s)
// and one held-back sample per track. Recover is idempotent: the output is deterministic,
// and an ErrExists for an object with the same bytes counts as success; a second Recover
// after success finds no journal (ErrNoJournal).
//
// # What comes from mediacommon, and what is hand-written
//
// mediacommon's fmp4.Init.Marshal writes the working file's init segment, and its
// sample entries (avc1/avcC, hvc1/hvcC, mp4v/esds, mp4a/esds) are copied from there into
// the progressive moov unchanged: the codec boxes are not duplicated here. Its H.264/
// H.265 SPS and AAC AudioSpecificConfig parsers validate the tracks. The tests read the
// output back with its pmp4 reader. Hand-written, and why:
//
//   - The progressive writer (moov, mdat): pmp4.Presentation.Marshal uses 32-bit fields
//     only (stco without co64, a 32-bit mdat size, version-0 mdhd), so files over 4 GB
//     or longer than 13.25 h of 90 kHz video come out silently corrupt; it keeps a
//     heap-allocated Sample, a pointer to it and a payload closure per sample (about 80
//     bytes per sample, 6–7× this index); it interleaves sample by sample (a chunk per
//     sample); and it gives MPEG-4 Part 2 a fixed 800×600 size.
//     This writer switches to co64, a 64-bit mdat size and version-1 mvhd/tkhd/mdhd/elst
//     when values need it.
//   - The fragment writer: fmp4.Part.Marshal goes through go-mp4's reflection (about 60
//     allocations per access unit in BenchmarkWriter) and copies every payload twice;
//     the hand-written moof (package moof, shared with cmaf) needs no allocation per
//     unit and lets the payloads be written from where they are.
//   - The working-file scanner: fmp4.Parts.Unmarshal wants the whole file as one []byte
//     (gigabytes after a long recording) and reports no payload offsets.
//   - The MPEG-4 Part 2 visual sample entry gets the demuxer's VOL width and height
//     patched in (mediacommon has no VOL parser); without a configuration in the Track,
//     the headers in front of the first keyframe's VOP are used.
package mp4
