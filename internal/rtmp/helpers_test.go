package rtmp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/livrec/livrec/internal/flv"
)

// rawStreamID is streamID as rawmessage's Reader and Writer see it: they read and write
// the 4-byte message stream id big-endian although the wire format is little-endian.
const rawStreamID = 0x01000000

// recSession records what a publish delivered.
type recSession struct {
	mu       sync.Mutex
	tags     []flv.Tag // bodies copied
	closes   int
	closeErr error
	closed   chan struct{}
	// failAfter makes Tag return tagErr once that many tags were received (0: never).
	failAfter int
	tagErr    error
	// tagAfterClose records a contract violation.
	tagAfterClose bool
}

func newRecSession() *recSession { return &recSession{closed: make(chan struct{})} }

func (s *recSession) Tag(t flv.Tag) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closes > 0 {
		s.tagAfterClose = true
	}
	t.Body = append([]byte(nil), t.Body...)
	s.tags = append(s.tags, t)
	if s.failAfter > 0 && len(s.tags) >= s.failAfter {
		return s.tagErr
	}
	return nil
}

func (s *recSession) Close(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	s.closeErr = err
	if s.closes == 1 {
		close(s.closed)
	}
}

// waitClosed waits for Close and returns its error; it fails the test if Close was
// called more than once (checked again a little later).
func (s *recSession) waitClosed(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(d):
		t.Fatalf("session not closed after %v", d)
	}
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closes != 1 {
		t.Fatalf("Session.Close called %d times", s.closes)
	}
	if s.tagAfterClose {
		t.Fatal("Session.Tag called after Session.Close")
	}
	return s.closeErr
}

func (s *recSession) snapshot() []flv.Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flv.Tag(nil), s.tags...)
}

// recHandler records publish requests; it refuses them with refuse if set.
type recHandler struct {
	mu        sync.Mutex
	reqs      []*PublishRequest
	sessions  []*recSession
	refuse    error
	newSess   func() *recSession
	published chan *recSession
}

func newRecHandler() *recHandler {
	return &recHandler{published: make(chan *recSession, 16)}
}

func (h *recHandler) Publish(req *PublishRequest) (Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, req)
	if h.refuse != nil {
		return nil, h.refuse
	}
	s := newRecSession()
	if h.newSess != nil {
		s = h.newSess()
	}
	h.sessions = append(h.sessions, s)
	h.published <- s
	return s, nil
}

func (h *recHandler) waitPublish(t *testing.T) *recSession {
	t.Helper()
	select {
	case s := <-h.published:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no publish")
		return nil
	}
}

func (h *recHandler) requests() []*PublishRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*PublishRequest(nil), h.reqs...)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() || os.Getenv("RTMP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer runs a Server on 127.0.0.1:0 and closes it at the end of the test,
// checking that Serve returned ErrServerClosed.
func startServer(t *testing.T, h Handler, configure func(*Server)) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Logger: testLogger(t)}
	if configure != nil {
		configure(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return s, l.Addr().String()
}

// checkGoroutines returns a function that fails the test if, within a few seconds, the
// number of goroutines does not come back to what it was when checkGoroutines was called.
func checkGoroutines(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("goroutine leak: %d before, %d after\n%s", before, n, buf)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// testClient is a minimal RTMP client on gortmplib's raw layers, so that tests can send
// exactly the bytes they want (codec id 9, odd command orders, garbage).
type testClient struct {
	t  *testing.T
	nc net.Conn
	r  *rawmessage.Reader
	w  *rawmessage.Writer
	// control records the protocol control messages received (type → last body).
	control map[uint8][]byte
	pongs   []uint32
}

func dialTest(t *testing.T, addr string, encrypted bool) *testClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	bc := bytecounter.NewReadWriter(nc)
	keyIn, keyOut, err := handshake.DoClient(bc, encrypted, false)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	var rw io.ReadWriter = bc
	if encrypted {
		if rw, err = newRC4ReadWriter(bc, keyIn, keyOut); err != nil {
			t.Fatal(err)
		}
	}
	return &testClient{
		t:       t,
		nc:      nc,
		r:       rawmessage.NewReader(rw, bc.Reader, func(uint32) error { return nil }),
		w:       rawmessage.NewWriter(rw, bc.Writer, false),
		control: map[uint8][]byte{},
	}
}

func (c *testClient) send(typ uint8, csid byte, msid, ts uint32, body []byte) {
	c.t.Helper()
	if err := c.trySend(typ, csid, msid, ts, body); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// trySend is send for messages the server may legitimately refuse by closing.
func (c *testClient) trySend(typ uint8, csid byte, msid, ts uint32, body []byte) error {
	return c.w.Write(&rawmessage.Message{
		ChunkStreamID: csid, Type: typ, MessageStreamID: msid,
		Timestamp: time.Duration(ts) * time.Millisecond, Body: body,
	})
}

func (c *testClient) call(csid byte, msid uint32, vals ...any) {
	c.t.Helper()
	body, err := amf0.Data(vals).Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(msgCommandAMF0, csid, msid, 0, body)
}

func (c *testClient) setChunkSize(n uint32) {
	c.send(msgSetChunkSize, 2, 0, 0, be32(n))
	c.w.SetChunkSize(n)
}

// next reads the next command message (decoded with gortmplib's AMF0 decoder, an
// independent check of our encoding), handling control messages on the way.
func (c *testClient) next() (string, amf0.Data, error) {
	for {
		msg, err := c.r.Read()
		if err != nil {
			return "", nil, err
		}
		switch msg.Type {
		case msgSetChunkSize:
			if err := c.r.SetChunkSize(uint32(msg.Body[0])<<24 | uint32(msg.Body[1])<<16 |
				uint32(msg.Body[2])<<8 | uint32(msg.Body[3])); err != nil {
				return "", nil, err
			}
			c.control[msg.Type] = msg.Body
		case msgUserControl:
			if len(msg.Body) == 6 && msg.Body[1] == ucPingResponse {
				c.pongs = append(c.pongs, uint32(msg.Body[2])<<24|uint32(msg.Body[3])<<16|
					uint32(msg.Body[4])<<8|uint32(msg.Body[5]))
			}
			c.control[msg.Type] = msg.Body
		case msgCommandAMF0:
			d, err := amf0.Unmarshal(msg.Body)
			if err != nil {
				return "", nil, fmt.Errorf("server sent undecodable command: %w", err)
			}
			name, _ := d[0].(string)
			return name, d, nil
		default:
			c.control[msg.Type] = msg.Body
		}
	}
}

// expect reads commands until one called name arrives (skipping others).
func (c *testClient) expect(name string) amf0.Data {
	c.t.Helper()
	for {
		n, d, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", name, err)
		}
		if n == name {
			return d
		}
	}
}

// expectStatus reads until an onStatus and returns its info object.
func (c *testClient) expectStatus() amf0.Object {
	c.t.Helper()
	d := c.expect("onStatus")
	if len(d) < 4 {
		c.t.Fatalf("short onStatus %v", d)
	}
	o, ok := d[3].(amf0.Object)
	if !ok {
		c.t.Fatalf("onStatus info is %T", d[3])
	}
	return o
}

// expectClosed checks that the server closes the connection.
func (c *testClient) expectClosed() {
	c.t.Helper()
	for {
		_, _, err := c.next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection not closed by server: %v", err)
			}
			return
		}
	}
}

// connect sends connect (with the given extra properties) and returns the _result.
func (c *testClient) connect(app, tcURL string, extra ...amf0.ObjectEntry) amf0.Data {
	c.t.Helper()
	obj := amf0.Object{
		{Key: "app", Value: app},
		{Key: "type", Value: "nonprivate"},
		{Key: "flashVer", Value: "FMLE/3.0 (compatible; test)"},
		{Key: "tcUrl", Value: tcURL},
	}
	obj = append(obj, extra...)
	c.call(3, 0, "connect", 1.0, obj)
	res := c.expect("_result")
	if res[1] != 1.0 {
		c.t.Fatalf("connect _result transaction id %v", res[1])
	}
	return res
}

// publish performs releaseStream, FCPublish, createStream and publish and returns the
// publish onStatus info.
func (c *testClient) publish(name string) amf0.Object {
	c.t.Helper()
	c.call(3, 0, "releaseStream", 2.0, nil, name)
	c.call(3, 0, "FCPublish", 3.0, nil, name)
	c.call(3, 0, "createStream", 4.0, nil)
	for {
		res := c.expect("_result")
		if res[1] == 4.0 {
			if len(res) < 4 || res[3] != float64(streamID) {
				c.t.Fatalf("createStream result %v", res)
			}
			break
		}
	}
	c.call(4, rawStreamID, "publish", 5.0, nil, name, "live")
	return c.expectStatus()
}

func amfBytes(t testing.TB, vals ...any) []byte {
	b, err := amf0.Data(vals).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
