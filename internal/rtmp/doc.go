// Package rtmp is livrec's RTMP ingest server. It accepts pushes to
// rtmp://host[:port]/{App}/{Stream}[?args], asks a Handler whether to accept each
// publish, and hands every audio, video and script-data message of an accepted publish
// onward as an flv.Tag, untouched and in arrival order.
//
// The package also has a publishing client (Publish, PublishFile): it pushes FLV tags
// with any codec as they are (legacy HEVC id 12, Enhanced RTMP hvc1, MPEG-4 Part 2 id 9),
// for tests, pull relays and the load generator. It reads everything the server sends and
// closes gracefully, so its last tags are never lost to a connection reset.
//
// # Why not gortmplib's ServerConn
//
// gortmplib's high-level ServerConn/Reader is not used: its message layer
// (pkg/message) rejects FLV video codec id 9 (MPEG-4 Part 2) with "unsupported video
// codec", which ends the connection, and it parses media into typed messages, hiding
// the raw tag bodies that livrec needs to pass on. Instead this package reuses
// gortmplib's exported low-level pieces and does its own command handling on top:
//
//   - pkg/handshake: the plain and the encrypted (RTMPE, C0 version 6) server handshake;
//     the encrypted variant is finished here with an RC4 stream (see rc4.go);
//   - pkg/rawmessage: writing messages as chunks (and, in the Publisher, reading);
//   - pkg/bytecounter: byte counts for the acknowledgements;
//   - pkg/amf0: the AMF0 types and the encoder used for our replies.
//
// # Why the chunk reader is hand-written
//
// The server reads chunk streams with its own chunkReader (chunkreader.go), not with
// rawmessage.Reader: that one allocates a buffer for every chunk's payload and then
// allocates the message body again to join them, so each byte is copied twice and a
// 1-2 Mbit/s publish makes several allocations per frame; with a few hundred publishes
// that was most of the ingest's allocation (and GC) and about an eighth of its CPU.
// chunkReader reads every chunk's payload from the bufio.Reader straight into the
// message body, allocated once at the length announced in the message header, or,
// for a message that fits, the memory of the chunk stream's previous body: the
// frames of a real-time publish are then received without any allocation (with one
// per message, the allocator and the GC were a quarter of the recording's CPU). The
// body is lent to the Session for the Tag call only (see Session.Tag).
//
// It handles chunk types 0-3 with per-chunk-stream header state, timestamp deltas,
// extended timestamps (with or without their repetition in type-3 chunks: the first
// such chunk of a connection tells), 1-, 2- and 3-byte chunk stream ids, Set Chunk
// Size, Abort Message and the acknowledgement window (our Acknowledgements are sent
// from its callback). Garbage cannot make it allocate much: a message is at most
// maxMessageSize (10 MiB), a connection has at most maxChunkStreams (64) chunk
// streams, and bodies are only allocated whole while the unfinished ones of a
// connection stay within 1 MiB; beyond that a body grows with the data actually
// received.
//
// AMF0 decoding of client commands is our own (amf.go): gortmplib's decoder recurses
// without a depth limit, so a deeply nested object in a hostile command could exhaust
// the goroutine stack, which is a fatal error rather than a recoverable panic.
//
// # Protocol
//
// Supported: connect (the Enhanced RTMP fourCcList is accepted and echoed), releaseStream,
// FCPublish, createStream (stream id 1), publish (also before createStream),
// FCUnpublish, deleteStream, closeStream, Set Chunk Size, Abort, Window Acknowledgement
// Size, Acknowledgement, user control ping, aggregate messages and AMF3-wrapped
// commands and data whose payload is AMF0. Play is refused; only one publish is allowed
// per connection. "@setDataFrame" data messages are delivered as FLV script tags with
// the "@setDataFrame" string stripped, as an FLV file stores them; other data messages
// pass through as they are. Empty audio and video messages are dropped.
//
// Any malformed input closes the connection with a logged reason. Each connection runs in
// one goroutine with a read deadline refreshed on every read, so an idle or stalled peer
// cannot hold a session open for longer than Server.ReadTimeout.
//
// Limitations: a single message may be at most 10 MiB, a command at most 64 KiB, and a
// connection may use at most 64 chunk streams. Replies go out on chunk stream 3 when
// the command came on one above 63 (rawmessage.Writer writes 1-byte chunk stream ids
// only).
package rtmp
