package rtmp

import (
	"log/slog"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/livrec/livrec/internal/flv"
)

// BenchmarkIngest measures the cost per delivered tag of a publish of 1000 4-KiB video
// messages (chunk size 4096), from bytes to Session.Tag. Nothing is allocated per tag
// (the chunk stream's body is reused); the allocations are the connection's setup.
func BenchmarkIngest(b *testing.B) {
	const n = 1000
	body := make([]byte, 4096)
	body[0], body[1] = 0x27, 0x01
	benchIngest(b, n, func(w *rawmessage.Writer) {
		for i := range n {
			w.Write(&rawmessage.Message{ChunkStreamID: 6, Type: msgVideo, MessageStreamID: rawStreamID,
				Timestamp: time.Duration(i) * 40 * time.Millisecond, Body: body})
		}
	})
}

// BenchmarkIngestMultiChunk is BenchmarkIngest with messages that span several chunks,
// as a 1-2 Mbit/s publish sends them: 1000 video frames of 15000 bytes (4 chunks of at
// most 4096 bytes) each followed by a 400-byte audio frame on its own chunk stream.
func BenchmarkIngestMultiChunk(b *testing.B) {
	const n = 1000
	video := make([]byte, 15000)
	video[0], video[1] = 0x27, 0x01
	audio := make([]byte, 400)
	audio[0], audio[1] = 0xAF, 0x01
	benchIngest(b, 2*n, func(w *rawmessage.Writer) {
		for i := range n {
			ts := time.Duration(i) * 40 * time.Millisecond
			w.Write(&rawmessage.Message{ChunkStreamID: 6, Type: msgVideo, MessageStreamID: rawStreamID,
				Timestamp: ts, Body: video})
			w.Write(&rawmessage.Message{ChunkStreamID: 4, Type: msgAudio, MessageStreamID: rawStreamID,
				Timestamp: ts, Body: audio})
		}
	})
}

// benchIngest serves, b.N times, a publish whose media (tags messages) write writes
// after the window and chunk size (4096) are set, and reports ns per tag.
func benchIngest(b *testing.B, tags int, write func(w *rawmessage.Writer)) {
	input := fuzzInput(synthSession(b, "s", func(w *rawmessage.Writer) {
		// synthSession asks for an acknowledgement every 100 bytes; use a normal window.
		w.Write(&rawmessage.Message{ChunkStreamID: 2, Type: msgWindowAckSize, Body: be32(DefaultWindowAckSize)})
		w.Write(&rawmessage.Message{ChunkStreamID: 2, Type: msgSetChunkSize, Body: be32(4096)})
		w.SetChunkSize(4096)
		write(w)
	}))
	s := &Server{Handler: benchHandler{}, Logger: slog.New(slog.DiscardHandler)}
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.serveConn(newMemConn(input))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tags), "ns/tag")
}

type benchHandler struct{}

func (benchHandler) Publish(*PublishRequest) (Session, error) { return benchSession{}, nil }

type benchSession struct{}

func (benchSession) Tag(flv.Tag) error { return nil }
func (benchSession) Close(error)       {}
