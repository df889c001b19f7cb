// Package flv is the FLV tag layer: the unit the ingest hands onward (type, timestamp,
// body), the parsing of audio/video tag headers (legacy and Enhanced RTMP), codec
// configuration records, and FLV file reading/writing.
//
// Hand-written: gortmplib's message layer rejects FLV video codec id 9 (MPEG-4 Part 2) and
// hides raw tag bodies, and no maintained Go library reads and writes FLV files with
// Enhanced RTMP headers. The parsers here work on untrusted bytes and are fuzzed.
//
// Contents:
//   - ParseVideoTagHeader / ParseAudioTagHeader: legacy and Enhanced RTMP (ExHeader) tag
//     headers. Every codec is named (VideoCodec/AudioCodec, CodecDescription) so callers
//     can report unsupported ones; Supported says which ones livrec records.
//   - ParseAVCConfig / ParseHEVCConfig (and Marshal*): decoder configuration records,
//     bounds-checked. mediacommon has no parser for these records (gortmplib keeps its own
//     unexported), hence hand-written; SPS contents are parsed with mediacommon.
//   - ParseMetadata: onMetaData via gortmplib's amf0 package, after a nesting-depth
//     pre-check (amf0 recurses per level).
//   - Reader / Writer: FLV files (header, tags, PreviousTagSize).
//   - Append*Header: tag header builders for writers and tests.
package flv

// Tag types as in the FLV specification (and RTMP message types 8, 9, 18).
const (
	TagAudio  uint8 = 8
	TagVideo  uint8 = 9
	TagScript uint8 = 18
)

// Tag is one FLV tag: what the RTMP ingest (or an FLV file, or an HTTP-FLV pull) yields.
// Timestamp is the 32-bit millisecond timestamp as received (it may wrap or jump: repair
// happens later, in package media). Body is the tag body without the 11-byte tag header;
// consumers must not modify it and must copy it if they keep it beyond the call.
type Tag struct {
	Type      uint8
	Timestamp uint32
	Body      []byte
}
