package rtmp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/testenv"
)

// handshakeLen is the size of C0+C1+C2, which FuzzConn prepends to its input unless
// the input starts with 0xFF.
const handshakeLen = 1 + 1536 + 1536

// memConn is a net.Conn that reads a fixed input, then EOF, and discards writes.
type memConn struct {
	r      *bytes.Reader
	mu     sync.Mutex
	closed bool
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem:1" }

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

func (c *memConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func newMemConn(b []byte) *memConn { return &memConn{r: bytes.NewReader(b)} }

func (c *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzHandler accepts every publish except stream "deny", and makes Tag fail on
// script tags whose body is exactly "fail" so that the error path runs too.
type fuzzHandler struct {
	mu sync.Mutex
	n  int // Publish calls
	s  []*fuzzSession
}

// count returns the number of Publish calls and of accepted publishes.
func (h *fuzzHandler) count() (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n, len(h.s)
}

func (h *fuzzHandler) sessions() []*fuzzSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*fuzzSession(nil), h.s...)
}

func (h *fuzzHandler) Publish(req *PublishRequest) (Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	if req.Stream == "deny" {
		return nil, fmt.Errorf("denied: %w", ErrBadName)
	}
	s := &fuzzSession{recSession: newRecSession()}
	h.s = append(h.s, s)
	return s, nil
}

// fuzzSession checks the tag contract on top of recSession's Close accounting.
type fuzzSession struct {
	*recSession
	violation string // set under recSession.mu
}

func (s *fuzzSession) Tag(t flv.Tag) error {
	var v string
	switch {
	case t.Type != flv.TagAudio && t.Type != flv.TagVideo && t.Type != flv.TagScript:
		v = fmt.Sprintf("tag type %d delivered", t.Type)
	case t.Type == flv.TagScript && hasAMF0StringPrefix(t.Body, "@setDataFrame"):
		v = "@setDataFrame not stripped"
	case len(t.Body) == 0:
		v = "empty tag delivered"
	}
	if v != "" {
		s.mu.Lock()
		s.violation = v
		s.mu.Unlock()
	}
	if err := s.recSession.Tag(t); err != nil {
		return err
	}
	if string(t.Body) == "fail" {
		return errors.New("session failure")
	}
	return nil
}

// runConn serves input on an in-memory connection and checks that it terminates and
// that every accepted session was closed exactly once, with no Tag after Close.
func runConn(t *testing.T, input []byte) *fuzzHandler {
	t.Helper()
	h := &fuzzHandler{}
	s := &Server{Handler: h, Logger: slog.New(slog.DiscardHandler), ReadTimeout: 50 * time.Millisecond}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveConn(newMemConn(input))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("connection did not terminate")
	}
	for i, ss := range h.sessions() {
		ss.mu.Lock()
		closes, after, v := ss.closes, ss.tagAfterClose, ss.violation
		ss.mu.Unlock()
		if closes != 1 || after || v != "" {
			t.Fatalf("session %d: Close called %d times, Tag after Close %v, violation %q", i, closes, after, v)
		}
	}
	return h
}

// fuzzInput turns a fuzz input into connection bytes: a plain handshake is prepended
// unless the input starts with 0xFF (then the rest is fed raw, handshake included).
func fuzzInput(data []byte) []byte {
	if len(data) > 0 && data[0] == 0xFF {
		return data[1:]
	}
	in := make([]byte, handshakeLen, handshakeLen+len(data))
	in[0] = 3
	return append(in, data...)
}

// synthSession builds the chunk stream of a complete publish session (after the
// handshake) with gortmplib's writer.
func synthSession(t testing.TB, name string, extra func(w *rawmessage.Writer)) []byte {
	var buf bytes.Buffer
	bc := bytecounter.NewWriter(&buf)
	w := rawmessage.NewWriter(&buf, bc, false)
	cmd := func(csid byte, msid uint32, vals ...any) {
		w.Write(&rawmessage.Message{ChunkStreamID: csid, Type: msgCommandAMF0, MessageStreamID: msid, Body: amfBytes(t, vals...)})
	}
	cmd(3, 0, "connect", 1.0, amf0.Object{
		{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://h.example/live?a=1"},
		{Key: "fourCcList", Value: amf0.StrictArray{"hvc1"}}, {Key: "objectEncoding", Value: 0.0},
	})
	w.Write(&rawmessage.Message{ChunkStreamID: 2, Type: msgWindowAckSize, Body: be32(100)})
	cmd(3, 0, "releaseStream", 2.0, nil, name)
	cmd(3, 0, "FCPublish", 3.0, nil, name)
	cmd(3, 0, "createStream", 4.0, nil)
	cmd(4, rawStreamID, "publish", 5.0, nil, name, "live")
	w.Write(&rawmessage.Message{ChunkStreamID: 4, Type: msgDataAMF0, MessageStreamID: rawStreamID,
		Body: amfBytes(t, "@setDataFrame", "onMetaData", amf0.ECMAArray{{Key: "width", Value: 1.0}})})
	w.Write(&rawmessage.Message{ChunkStreamID: 6, Type: msgVideo, MessageStreamID: rawStreamID,
		Body: append([]byte{0x17, 0, 0, 0, 0}, make([]byte, 300)...)})
	w.Write(&rawmessage.Message{ChunkStreamID: 7, Type: msgAudio, MessageStreamID: rawStreamID,
		Timestamp: 23 * time.Millisecond, Body: []byte{0xAF, 1, 2, 3}})
	w.Write(&rawmessage.Message{ChunkStreamID: 2, Type: msgUserControl, Body: []byte{0, 6, 0, 0, 0, 1}})
	if extra != nil {
		extra(w)
	}
	cmd(3, 0, "FCUnpublish", 6.0, nil, name)
	cmd(3, 0, "deleteStream", 7.0, nil, 1.0)
	return buf.Bytes()
}

func FuzzConn(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xFF})
	f.Add([]byte{0xFF, 6})
	f.Add(synthSession(f, "s", nil))
	f.Add(synthSession(f, "deny", nil))
	f.Add(synthSession(f, "s", func(w *rawmessage.Writer) {
		w.Write(&rawmessage.Message{ChunkStreamID: 2, Type: msgSetChunkSize, Body: be32(64)})
		w.SetChunkSize(64)
		w.Write(&rawmessage.Message{ChunkStreamID: 6, Type: msgAggregate, MessageStreamID: rawStreamID,
			Body: []byte{9, 0, 0, 2, 0, 0, 10, 0, 0, 0, 0, 0x27, 1, 0, 0, 0, 13}})
		w.Write(&rawmessage.Message{ChunkStreamID: 4, Type: msgDataAMF0, MessageStreamID: rawStreamID, Body: []byte("fail")})
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		runConn(t, fuzzInput(data))
	})
}

// TestFuzzConnSeeds checks that the committed seeds reach the interesting paths, so
// that the fuzz corpus stays meaningful.
func TestFuzzConnSeeds(t *testing.T) {
	h := runConn(t, fuzzInput(synthSession(t, "s", nil)))
	if n, ns := h.count(); n != 1 || ns != 1 {
		t.Fatalf("publishes %d, sessions %d", n, ns)
	}
	s := h.sessions()[0]
	if s.closeErr != nil || len(s.tags) != 3 {
		t.Fatalf("close %v, %d tags", s.closeErr, len(s.tags))
	}
	// The recorded real sessions replay to a clean publish with media.
	files, _ := filepath.Glob("testdata/fuzz/FuzzConn/ffmpeg-*")
	if len(files) == 0 {
		t.Fatal("recorded seeds missing")
	}
	for _, f := range files {
		data, err := readCorpusFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ss := runConn(t, fuzzInput(data)).sessions()
		if len(ss) != 1 || ss[0].closeErr != nil || len(ss[0].tags) < 10 {
			t.Errorf("%s: replay did not give one clean publish with media", f)
		}
	}
}

// readCorpusFile decodes a "go test fuzz v1" file holding one []byte.
func readCorpusFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := bytes.SplitN(b, []byte("\n"), 2)
	if len(lines) != 2 || string(lines[0]) != "go test fuzz v1" {
		return nil, errors.New("not a fuzz corpus file")
	}
	v := bytes.TrimSpace(lines[1])
	if !bytes.HasPrefix(v, []byte("[]byte(")) || !bytes.HasSuffix(v, []byte(")")) {
		return nil, errors.New("not a []byte corpus entry")
	}
	s, err := strconv.Unquote(string(v[len("[]byte(") : len(v)-1]))
	return []byte(s), err
}

// TestWriteCapturedSeeds records real client sessions (ffmpeg and gortmplib's client)
// as FuzzConn seeds. Run with RTMP_WRITE_SEEDS=1 to refresh testdata.
func TestWriteCapturedSeeds(t *testing.T) {
	if os.Getenv("RTMP_WRITE_SEEDS") == "" {
		t.Skip("set RTMP_WRITE_SEEDS=1 to record seeds")
	}
	ffmpeg := testenv.Path(t, testenv.FFmpeg)
	for name, codec := range map[string][]string{
		"ffmpeg-h264-aac":  {"-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-c:a", "aac"},
		"ffmpeg-mpeg4-mp3": {"-c:v", "mpeg4", "-strict", "-1", "-g", "5", "-c:a", "libmp3lame"},
	} {
		h := newRecHandler()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tl := &teeListener{Listener: l}
		s := &Server{Handler: h, Logger: testLogger(t)}
		go s.Serve(tl)
		args := []string{"-hide_banner", "-nostdin", "-loglevel", "error",
			"-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "sine", "-t", "0.3"}
		args = append(append(args, codec...), "-f", "flv", "rtmp://"+l.Addr().String()+"/live/seed?vhost=v.example")
		out, err := exec.Command(ffmpeg, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		h.waitPublish(t).waitClosed(t, 5*time.Second)
		s.Close()
		data := tl.captured()[handshakeLen:]
		path := filepath.Join("testdata/fuzz/FuzzConn", name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(data))
	}
}

// teeListener records what the first accepted connection receives.
type teeListener struct {
	net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c, l: l}, nil
}

func (l *teeListener) captured() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf.Bytes()...)
}

type teeConn struct {
	net.Conn
	l *teeListener
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// chunkReaderOptions decodes FuzzChunkReader's first input byte: the bufio.Reader size
// (bits 0-1), an initial chunk size of 4096 instead of 128 (bit 2) and an
// acknowledgement window of 100 bytes (bit 3).
func chunkReaderOptions(opt byte) (bufSize int, chunkSize, window uint32) {
	bufSize = []int{16, 64, 4096, readBufferSize}[opt&3]
	chunkSize = 128
	if opt&4 != 0 {
		chunkSize = 4096
	}
	if opt&8 != 0 {
		window = 100
	}
	return bufSize, chunkSize, window
}

// FuzzChunkReader feeds arbitrary chunk streams to chunkReader (applying Set Chunk Size
// and Abort as conn does) and checks that it ends with an error rather than panicking
// or hanging, that messages have the announced size within the limit, that delivered
// bodies are never modified afterwards, and that the memory held by unfinished messages
// stays within eagerAllocBudget plus what their received bytes justify (nothing beyond
// them for an untrusted peer). Each input is read in both modes. Its seeds are in
// testdata/fuzz/FuzzChunkReader (see TestFuzzChunkReaderSeeds).
func FuzzChunkReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		fuzzChunkReader(t, data, true)
		fuzzChunkReader(t, data, false)
		fuzzLendReader(t, data)
	})
}

// fuzzLendReader checks that the connection's reader on lent buffers, with reads ending
// anywhere, delivers what a bufio.Reader does, to the same kind of end.
func fuzzLendReader(t *testing.T, data []byte) {
	bufSize, chunkSize, _ := chunkReaderOptions(data[0])
	read := func(r *chunkReader) ([]message, error) {
		r.SetChunkSize(chunkSize)
		return readMessages(r)
	}
	want, werr := read(testChunkReader(data[1:], bufSize))
	lr, _ := lendChunkReader(t, data[1:], uint64(len(data)), 1+int(data[0]>>4)*300)
	got, gerr := read(lr)
	if (werr == io.EOF) != (gerr == io.EOF) || (werr == nil) != (gerr == nil) {
		t.Fatalf("bufio ended with %v, the lent reader with %v", werr, gerr)
	}
	checkMessages(t, got, want)
}

func fuzzChunkReader(t *testing.T, data []byte, trusted bool) {
	bufSize, chunkSize, window := chunkReaderOptions(data[0])
	bc := bytecounter.NewReader(bytes.NewReader(data[1:]))
	var lastAck uint32
	r := newChunkReader(bufio.NewReaderSize(bc, bufSize), bc, func(n uint32) error {
		if n < lastAck || uint64(n) > uint64(len(data)) {
			t.Fatalf("acknowledgement of %d bytes after %d, input %d bytes", n, lastAck, len(data))
		}
		lastAck = n
		return nil
	})
	r.SetChunkSize(chunkSize)
	r.SetWindowAckSize(window)
	r.SetTrusted(trusted)
	for {
		m, err := r.Read()
		checkChunkReaderMemory(t, r)
		if err != nil {
			break
		}
		if m.Body == nil || len(m.Body) > maxMessageSize {
			t.Fatalf("message body nil or of %d bytes", len(m.Body))
		}
		switch {
		case m.Type == msgSetChunkSize && len(m.Body) == 4:
			if v := binary.BigEndian.Uint32(m.Body) & 0x7FFFFFFF; v > 0 {
				r.SetChunkSize(v)
			}
		case m.Type == msgAbort && len(m.Body) == 4:
			r.AbortChunkStream(binary.BigEndian.Uint32(m.Body))
		}
	}
}

// checkChunkReaderMemory checks the reader's accounting of unfinished message bodies and
// its bound.
func checkChunkReaderMemory(t *testing.T, r *chunkReader) {
	t.Helper()
	var streams []*chunkStream
	for _, cs := range r.low {
		if cs != nil {
			streams = append(streams, cs)
		}
	}
	for _, cs := range r.high {
		streams = append(streams, cs)
	}
	if len(streams) != r.nstreams || r.nstreams > maxChunkStreams {
		t.Fatalf("%d chunk streams, counted %d", len(streams), r.nstreams)
	}
	total, excess := 0, 0
	for _, cs := range streams {
		if !cs.pending {
			if cs.body != nil || cs.received != 0 {
				t.Fatalf("chunk stream %d holds a body between messages", cs.id)
			}
			continue
		}
		if cs.received > uint32(len(cs.body)) || uint32(len(cs.body)) > cs.length || cs.length > maxMessageSize {
			t.Fatalf("chunk stream %d: %d of %d bytes received, body of %d", cs.id, cs.received, cs.length, len(cs.body))
		}
		total += len(cs.body)
		excess += max(0, len(cs.body)-max(r.allocStep, 2*int(cs.received)))
	}
	if total != r.reserved || excess > r.eagerBudget {
		t.Fatalf("unfinished bodies hold %d bytes (%d beyond their data), reserved %d", total, excess, r.reserved)
	}
}

// chunkReaderSeeds are FuzzChunkReader's seeds (option byte first): the chunk streams of
// the chunkReader unit tests' kinds, so that the fuzzer starts from every header type,
// extended timestamps in all three forms, chunk size changes, aborts and the limits.
func chunkReaderSeeds(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{}
	add := func(name string, opt byte, b []byte) { seeds[name] = append([]byte{opt}, b...) }

	var e chunkEnc
	v, a := pattern(300, 1), pattern(200, 2)
	e.type0(6, 1000, 300, msgVideo, 1).data(v[:128])
	e.type0(4, 1010, 200, msgAudio, 1).data(a[:128])
	e.type0(100, 5, 3, msgDataAMF0, 1).data([]byte{1, 2, 3})
	e.type3(6).data(v[128:256])
	e.type0(65599, 7, 130, msgCommandAMF0, 0x01020304).data(v[:128])
	e.type3(4).data(a[128:])
	e.type3(65599).data(v[128:130])
	e.type3(6).data(v[256:])
	e.type3(100).data([]byte{4, 5, 6})
	e.type1(6, 40, 10, msgVideo).data(v[:10])
	e.type2(6, 40).data(v[:10])
	e.type3(6).data(v[:10])
	add("interleaved", 0, bytes.Clone(e.Bytes()))
	add("interleaved-ack", 8|3, bytes.Clone(e.Bytes()))

	for name, rep := range map[string]func(uint32) []uint32{
		"ext-repeated": func(f uint32) []uint32 { return []uint32{f} },
		"ext-zeros":    func(uint32) []uint32 { return []uint32{0} },
		"ext-omitted":  func(uint32) []uint32 { return nil },
	} {
		const big = 0x01000000
		e.Reset()
		e.type0(5, big, 300, msgVideo, 1).data(v[:128])
		e.type3(5, rep(big)...).data(v[128:256])
		e.type3(5, rep(big)...).data(v[256:])
		e.type3(5, rep(big)...).data(v[:128])
		e.type3(5, rep(big)...).data(v[128:256])
		e.type3(5, rep(big)...).data(v[256:])
		e.type1(5, big, 10, msgVideo).data(v[:10])
		e.type3(5, rep(big)...).data(v[:10])
		add(name, 1, bytes.Clone(e.Bytes()))
	}

	e.Reset()
	e.type0(6, 0, 1000, msgVideo, 1).data(pattern(128, 0))
	e.type0(2, 0, 4, msgSetChunkSize, 0).data(be32(500))
	e.type3(6).data(pattern(500, 1))
	e.type3(6).data(pattern(372, 2))
	e.type0(2, 0, 4, msgSetChunkSize, 0).data(be32(1))
	e.type1(6, 40, 5, msgVideo).data([]byte{1})
	for i := range 4 {
		e.type3(6).data([]byte{byte(i)})
	}
	add("chunk-size", 2, bytes.Clone(e.Bytes()))

	e.Reset()
	e.type0(6, 0, 300, msgVideo, 1).data(pattern(128, 9))
	e.type0(2, 0, 4, msgAbort, 0).data(be32(6))
	e.type0(6, 40, 20, msgVideo, 1).data(pattern(20, 3))
	e.type0(7, 10, 200, msgAudio, 1).data(pattern(128, 9))
	e.type0(2, 0, 4, msgAbort, 0).data(be32(7))
	e.type3(7).data(pattern(128, 4)).type3(7).data(pattern(72, 5))
	add("abort", 0, bytes.Clone(e.Bytes()))

	e.Reset()
	e.type0(3, 0, 600<<10, msgVideo, 1).data(pattern(128, 0))
	e.type0(4, 0, 600<<10, msgVideo, 1).data(pattern(128, 0))
	e.type0(5, 0, maxMessageSize, msgVideo, 1).data(pattern(128, 0))
	e.type0(6, 0, maxMessageSize+1, msgVideo, 1)
	add("big-messages", 0, bytes.Clone(e.Bytes()))

	// What gortmplib's writer sends, with a small chunk size.
	var buf bytes.Buffer
	w := rawmessage.NewWriter(&buf, bytecounter.NewWriter(&buf), false)
	w.Write(&rawmessage.Message{ChunkStreamID: 2, Type: msgSetChunkSize, Body: be32(60)})
	w.SetChunkSize(60)
	for i := range 20 {
		ts := time.Duration(i*i*1000) * time.Millisecond
		if i == 10 {
			ts = 0xFFFFFF0 * time.Millisecond
		}
		w.Write(&rawmessage.Message{ChunkStreamID: byte(4 + i%3), Type: msgVideo, MessageStreamID: rawStreamID,
			Timestamp: ts, Body: pattern(10+i*20, byte(i))})
	}
	add("gortmplib-writer", 0, buf.Bytes())
	return seeds
}

// TestFuzzChunkReaderSeeds checks that the committed FuzzChunkReader seeds are the ones
// chunkReaderSeeds builds, so that the corpus stays meaningful. Run with
// RTMP_WRITE_SEEDS=1 to rewrite them.
func TestFuzzChunkReaderSeeds(t *testing.T) {
	dir := "testdata/fuzz/FuzzChunkReader"
	for name, data := range chunkReaderSeeds(t) {
		path := filepath.Join(dir, name)
		if os.Getenv("RTMP_WRITE_SEEDS") != "" {
			os.MkdirAll(dir, 0o755)
			content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := readCorpusFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: missing or outdated (%v); run with RTMP_WRITE_SEEDS=1", path, err)
		}
		// Every seed but the limits one reads to a clean end.
		bufSize, chunkSize, window := chunkReaderOptions(data[0])
		r := testChunkReader(data[1:], bufSize)
		r.SetChunkSize(chunkSize)
		r.SetWindowAckSize(window)
		msgs, err := readMessages(r)
		if name == "big-messages" {
			if err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
				t.Errorf("%s: %v", name, err)
			}
		} else if err != io.EOF || len(msgs) < 3 {
			t.Errorf("%s: %d messages, %v", name, len(msgs), err)
		}
	}
}
