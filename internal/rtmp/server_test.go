package rtmp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"

	"github.com/livrec/livrec/internal/flv"
)

// TestPublishRawClient drives the whole publish flow byte by byte: connect with an
// Enhanced RTMP fourCcList, the FMLE command sequence, control messages, MPEG-4 Part 2
// video (codec id 9), metadata, an aggregate message, a ping, extended timestamps and
// a clean unpublish.
func TestPublishRawClient(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		name := "plain"
		if encrypted {
			name = "rtmpe"
		}
		t.Run(name, func(t *testing.T) {
			testPublishRawClient(t, encrypted)
		})
	}
}

func testPublishRawClient(t *testing.T, encrypted bool) {
	h := newRecHandler()
	_, addr := startServer(t, h, nil)
	c := dialTest(t, addr, encrypted)

	const tcURL = "rtmp://Example.COM:1935/live?tc=1"
	res := c.connect("live", tcURL,
		amf0.ObjectEntry{Key: "fourCcList", Value: amf0.StrictArray{"hvc1", "av01"}},
		amf0.ObjectEntry{Key: "objectEncoding", Value: 0.0})
	props, _ := res[2].(amf0.Object)
	if v, ok := props.Get("fourCcList"); !ok || len(v.(amf0.StrictArray)) != 2 {
		t.Errorf("fourCcList not echoed: %v", props)
	}
	info, _ := res[3].(amf0.Object)
	if code, _ := info.GetString("code"); code != "NetConnection.Connect.Success" {
		t.Errorf("connect code %q", code)
	}
	if _, ok := info.GetFloat64("objectEncoding"); !ok {
		t.Errorf("objectEncoding missing: %v", info)
	}
	if got := c.control[msgWindowAckSize]; !bytes.Equal(got, be32(DefaultWindowAckSize)) {
		t.Errorf("window ack size %x", got)
	}
	if got := c.control[msgSetPeerBandwidth]; len(got) != 5 {
		t.Errorf("set peer bandwidth %x", got)
	}
	if got := c.control[msgSetChunkSize]; !bytes.Equal(got, be32(DefaultChunkSize)) {
		t.Errorf("chunk size %x", got)
	}

	st := c.publish("key?vhost=v.example&token=abc")
	if code, _ := st.GetString("code"); code != "NetStream.Publish.Start" {
		t.Fatalf("publish status %v", st)
	}
	s := h.waitPublish(t)
	req := h.requests()[0]
	if req.App != "live" || req.Stream != "key" || req.Domain != "v.example" || req.TcURL != tcURL ||
		req.PublishType != "live" {
		t.Errorf("request %+v", req)
	}
	if req.Args.Get("vhost") != "v.example" || req.Args.Get("token") != "abc" || req.Args.Get("tc") != "1" {
		t.Errorf("args %v", req.Args)
	}
	if req.RemoteAddr == nil || req.RemoteAddr.String() != c.nc.LocalAddr().String() {
		t.Errorf("remote addr %v, want %v", req.RemoteAddr, c.nc.LocalAddr())
	}

	meta := amf0.ECMAArray{{Key: "width", Value: 320.0}, {Key: "videocodecid", Value: 9.0}}
	seq := append([]byte{0x19, 0x00, 0, 0, 0}, bytes.Repeat([]byte{0xB0, 0x01}, 20)...)
	big := make([]byte, 5000) // several chunks at 128 bytes, two at 4096
	for i := range big {
		big[i] = byte(i)
	}
	big[0], big[1] = 0x19, 0x01
	audio := []byte{0x2F, 0xFF, 0xFB, 0x90, 0x64}

	var want []flv.Tag
	c.send(msgDataAMF0, 4, rawStreamID, 0, amfBytes(t, "@setDataFrame", "onMetaData", meta))
	want = append(want, flv.Tag{Type: flv.TagScript, Body: amfBytes(t, "onMetaData", meta)})
	c.send(msgVideo, 6, rawStreamID, 0, seq)
	want = append(want, flv.Tag{Type: flv.TagVideo, Body: seq})
	c.send(msgAudio, 7, rawStreamID, 0, audio)
	want = append(want, flv.Tag{Type: flv.TagAudio, Body: audio})
	c.send(msgVideo, 6, rawStreamID, 40, big)
	want = append(want, flv.Tag{Type: flv.TagVideo, Timestamp: 40, Body: big})
	c.setChunkSize(4096)
	c.send(msgVideo, 6, rawStreamID, 80, big)
	want = append(want, flv.Tag{Type: flv.TagVideo, Timestamp: 80, Body: big})
	// A plain onMetaData data message passes through as it is.
	plain := amfBytes(t, "onMetaData", amf0.Object{{Key: "duration", Value: 0.0}})
	c.send(msgDataAMF0, 4, rawStreamID, 80, plain)
	want = append(want, flv.Tag{Type: flv.TagScript, Timestamp: 80, Body: plain})
	// An aggregate of an audio and a video tag, rebased to the message timestamp.
	var agg []byte
	for _, sub := range []struct {
		typ  uint8
		ts   uint32
		body []byte
	}{{msgAudio, 1000, audio}, {msgVideo, 1040, []byte{0x29, 0x01, 0, 0, 0, 7}}} {
		n := len(sub.body)
		agg = append(agg, sub.typ, byte(n>>16), byte(n>>8), byte(n),
			byte(sub.ts>>16), byte(sub.ts>>8), byte(sub.ts), byte(sub.ts>>24), 0, 0, 0)
		agg = append(agg, sub.body...)
		agg = append(agg, be32(uint32(11+n))...)
		want = append(want, flv.Tag{Type: sub.typ, Timestamp: 120 + sub.ts - 1000, Body: sub.body})
	}
	c.send(msgAggregate, 6, rawStreamID, 120, agg)
	// Extended timestamp.
	c.send(msgVideo, 6, rawStreamID, 0x01000005, []byte{0x29, 0x01, 0, 0, 0, 8})
	want = append(want, flv.Tag{Type: flv.TagVideo, Timestamp: 0x01000005, Body: []byte{0x29, 0x01, 0, 0, 0, 8}})

	// Ping, then an unknown call: the server answers both, in order.
	c.send(msgUserControl, 2, 0, 0, []byte{0, ucPingRequest, 0, 0, 0x30, 0x39})
	c.call(3, 0, "getSomething", 9.0, nil)
	if r := c.expect("_result"); r[1] != 9.0 {
		t.Errorf("unknown call answered with %v", r)
	}
	if len(c.pongs) != 1 || c.pongs[0] != 12345 {
		t.Errorf("pongs %v", c.pongs)
	}

	c.call(3, 0, "FCUnpublish", 10.0, nil, "key")
	c.call(3, 0, "deleteStream", 0.0, nil, 1.0)
	if err := s.waitClosed(t, 5*time.Second); err != nil {
		t.Errorf("Close(%v), want nil after unpublish", err)
	}
	got := s.snapshot()
	if len(got) != len(want) {
		t.Fatalf("got %d tags, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].Timestamp != want[i].Timestamp || !bytes.Equal(got[i].Body, want[i].Body) {
			t.Errorf("tag %d: got type %d ts %d body %x...; want type %d ts %d body %x...", i,
				got[i].Type, got[i].Timestamp, head(got[i].Body), want[i].Type, want[i].Timestamp, head(want[i].Body))
		}
	}
	// Media after the unpublish goes nowhere, and the connection stays usable.
	c.send(msgVideo, 6, rawStreamID, 200, seq)
	c.call(3, 0, "getSomething", 11.0, nil)
	c.expect("_result")
	if n := len(s.snapshot()); n != len(want) {
		t.Errorf("%d tags after unpublish", n-len(want))
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

// TestPublishRefused checks both refusal codes, the description, and that the
// connection is closed.
func TestPublishRefused(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{errors.Join(errors.New("unknown stream key"), ErrBadName), "NetStream.Publish.BadName"},
		{errors.New("stream key already publishing"), "NetStream.Publish.Denied"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			h := newRecHandler()
			h.refuse = tc.err
			_, addr := startServer(t, h, nil)
			c := dialTest(t, addr, false)
			c.connect("live", "rtmp://127.0.0.1/live")
			st := c.publish("key")
			if code, _ := st.GetString("code"); code != tc.code {
				t.Errorf("code %q, want %q", code, tc.code)
			}
			if lvl, _ := st.GetString("level"); lvl != "error" {
				t.Errorf("level %q", lvl)
			}
			if d, _ := st.GetString("description"); d != tc.err.Error() {
				t.Errorf("description %q, want %q", d, tc.err.Error())
			}
			c.expectClosed()
		})
	}
}

// TestCommandOrder covers publish before createStream, a second publish, play, an
// empty stream name and commands before connect.
func TestCommandOrder(t *testing.T) {
	h := newRecHandler()
	_, addr := startServer(t, h, nil)

	t.Run("publish before createStream", func(t *testing.T) {
		c := dialTest(t, addr, false)
		c.connect("app", "rtmp://h.example/app")
		c.call(3, 0, "publish", 2.0, nil, "s1", "live")
		if code, _ := c.expectStatus().GetString("code"); code != "NetStream.Publish.Start" {
			t.Fatalf("status %q", code)
		}
		s := h.waitPublish(t)
		c.send(msgVideo, 6, 0, 5, []byte{0x17, 0x00, 0, 0, 0, 1})
		// A second publish is refused and closes the connection, ending the first.
		c.call(3, 0, "publish", 3.0, nil, "s2", "live")
		if code, _ := c.expectStatus().GetString("code"); code != "NetStream.Publish.Denied" {
			t.Errorf("second publish status %q", code)
		}
		c.expectClosed()
		if err := s.waitClosed(t, 5*time.Second); err == nil {
			t.Error("Close(nil) after a refused second publish")
		}
		if tags := s.snapshot(); len(tags) != 1 || tags[0].Timestamp != 5 {
			t.Errorf("tags %v", tags)
		}
		req := h.requests()[0]
		if req.App != "app" || req.Stream != "s1" || req.Domain != "h.example" {
			t.Errorf("request %+v", req)
		}
	})

	t.Run("play", func(t *testing.T) {
		c := dialTest(t, addr, false)
		c.connect("app", "rtmp://h/app")
		c.call(3, 0, "createStream", 2.0, nil)
		c.call(4, rawStreamID, "play", 3.0, nil, "s1")
		if code, _ := c.expectStatus().GetString("code"); code != "NetStream.Play.Failed" {
			t.Errorf("play status %q", code)
		}
		c.expectClosed()
	})

	t.Run("empty name", func(t *testing.T) {
		n := len(h.requests())
		c := dialTest(t, addr, false)
		c.connect("app", "rtmp://h/app")
		c.call(3, 0, "publish", 2.0, nil, "?vhost=x", "live")
		if code, _ := c.expectStatus().GetString("code"); code != "NetStream.Publish.BadName" {
			t.Errorf("status %q", code)
		}
		c.expectClosed()
		if len(h.requests()) != n {
			t.Error("handler called for an empty stream name")
		}
	})

	t.Run("publish before connect", func(t *testing.T) {
		c := dialTest(t, addr, false)
		c.call(3, 0, "publish", 2.0, nil, "s1", "live")
		if code, _ := c.expectStatus().GetString("code"); code != "NetStream.Publish.Denied" {
			t.Errorf("status %q", code)
		}
		c.expectClosed()
	})

	t.Run("createStream before connect", func(t *testing.T) {
		c := dialTest(t, addr, false)
		c.call(3, 0, "createStream", 2.0, nil)
		c.expectClosed()
	})
}

// TestTagErrorEndsConnection: an error from Session.Tag closes the connection and is
// handed to Session.Close.
func TestTagErrorEndsConnection(t *testing.T) {
	errFull := errors.New("disk full")
	h := newRecHandler()
	h.newSess = func() *recSession {
		s := newRecSession()
		s.failAfter, s.tagErr = 2, errFull
		return s
	}
	_, addr := startServer(t, h, nil)
	c := dialTest(t, addr, false)
	c.connect("live", "rtmp://127.0.0.1/live")
	c.publish("k")
	s := h.waitPublish(t)
	for i := range 5 {
		// The server closes after the failing tag: later writes may see a broken pipe.
		if err := c.trySend(msgAudio, 7, rawStreamID, uint32(i), []byte{0xAF, 0x01, byte(i)}); err != nil && i < 2 {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := s.waitClosed(t, 5*time.Second); !errors.Is(err, errFull) {
		t.Errorf("Close(%v), want %v", err, errFull)
	}
	c.expectClosed()
	if n := len(s.snapshot()); n != 2 {
		t.Errorf("%d tags delivered, want 2", n)
	}
}

// TestReadTimeout: a publisher that goes silent is closed after ReadTimeout, and so is
// a client that stops in the middle of the handshake.
func TestReadTimeout(t *testing.T) {
	h := newRecHandler()
	_, addr := startServer(t, h, func(s *Server) { s.ReadTimeout = 200 * time.Millisecond })

	c := dialTest(t, addr, false)
	c.connect("live", "rtmp://127.0.0.1/live")
	c.publish("k")
	s := h.waitPublish(t)
	start := time.Now()
	err := s.waitClosed(t, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "no data") {
		t.Errorf("Close(%v), want a timeout error", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("closed after %v", d)
	}
	c.expectClosed()

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte{3, 0, 0, 0}) // C0 and the start of C1
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readAll(nc); err != nil {
		t.Errorf("half-handshake connection not closed by the server: %v", err)
	}
}

// readAll reads until EOF; a timeout is returned as an error.
func readAll(nc net.Conn) (int, error) {
	buf := make([]byte, 4096)
	total := 0
	for {
		n, err := nc.Read(buf)
		total += n
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return total, err
			}
			return total, nil
		}
	}
}

// TestServerClose: Close with live publishes, an idle connection and one stuck in the
// handshake closes every session exactly once, makes Serve return and leaks nothing.
func TestServerClose(t *testing.T) {
	leak := checkGoroutines(t)
	h := newRecHandler()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Logger: testLogger(t)}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	addr := l.Addr().String()

	var sessions []*recSession
	var clients []*testClient
	for i := range 3 {
		c := dialTest(t, addr, false)
		c.connect("live", "rtmp://127.0.0.1/live")
		c.publish("k" + string(rune('0'+i)))
		c.send(msgAudio, 7, rawStreamID, 0, []byte{0xAF, 0x01})
		sessions = append(sessions, h.waitPublish(t))
		clients = append(clients, c)
	}
	idle := dialTest(t, addr, false)
	stuck, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stuck.Write([]byte{3})
	time.Sleep(50 * time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-served:
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	for i, ss := range sessions {
		// Close has waited for the connection goroutines: no waiting needed here.
		select {
		case <-ss.closed:
		default:
			t.Fatalf("session %d not closed when Server.Close returned", i)
		}
		if err := ss.waitClosed(t, time.Second); !errors.Is(err, ErrServerClosed) {
			t.Errorf("session %d: Close(%v)", i, err)
		}
	}
	for _, c := range clients {
		c.expectClosed()
	}
	idle.expectClosed()
	stuck.Close()
	if err := s.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	for _, c := range clients {
		c.nc.Close()
	}
	idle.nc.Close()
	leak()
}

func TestNewPublishRequest(t *testing.T) {
	for _, tc := range []struct {
		app, tcURL, name   string
		wantApp, wantName  string
		wantDomain, wantQS string
	}{
		// ffmpeg: query in the publish name.
		{"live", "rtmp://127.0.0.1:1935/live", "test?vhost=example.com", "live", "test", "example.com", "vhost=example.com"},
		// OBS with arguments in the server URL: app and tcUrl carry them.
		{"live?vhost=a.com&x=1", "rtmp://1.2.3.4/live?vhost=a.com&x=1", "key", "live", "key", "a.com", "vhost=a.com&x=1"},
		// App with query but tcUrl without.
		{"live?vhost=b.com", "rtmp://h/live", "key", "live", "key", "b.com", "vhost=b.com"},
		// Publish-name vhost wins over the tcUrl's.
		{"live", "rtmp://h/live?vhost=tc.com", "k?vhost=name.com", "live", "k", "name.com", "vhost=name.com&vhost=tc.com"},
		// No vhost: tcUrl host without port; IPv6.
		{"live", "rtmp://[::1]:1935/live", "k", "live", "k", "::1", ""},
		// No app in connect: tcUrl path.
		{"", "rtmp://h.example/app2/", "k", "app2", "k", "h.example", ""},
		// Unparsable tcUrl: no domain, args still found.
		{"live", "rtmp://h:bad port/live?a=1", "k", "live", "k", "", "a=1"},
		// Malformed escapes are skipped, the rest kept.
		{"live", "rtmp://h/live", "k?a=%zz&b=2", "live", "k", "h", "b=2"},
	} {
		r := newPublishRequest(tc.app, tc.tcURL, tc.name, "live", nil)
		if r.App != tc.wantApp || r.Stream != tc.wantName || r.Domain != tc.wantDomain || r.Args.Encode() != tc.wantQS ||
			r.TcURL != tc.tcURL {
			t.Errorf("%q %q %q: got app %q stream %q domain %q args %q", tc.app, tc.tcURL, tc.name,
				r.App, r.Stream, r.Domain, r.Args.Encode())
		}
	}
}

type panicHandler struct{}

func (panicHandler) Publish(*PublishRequest) (Session, error) { panic("handler bug") }

// TestHandlerPanic: a panic in the handler closes that connection only.
func TestHandlerPanic(t *testing.T) {
	_, addr := startServer(t, panicHandler{}, nil)
	for range 2 {
		c := dialTest(t, addr, false)
		c.connect("live", "rtmp://127.0.0.1/live")
		c.call(3, 0, "publish", 2.0, nil, "k", "live")
		c.expectClosed()
	}
}

// TestAckHeldUntilQuiet: a publisher ahead of real time gets its acknowledgement once it
// goes quiet (it may be waiting for one), with the count of everything received.
func TestAckHeldUntilQuiet(t *testing.T) {
	h := newRecHandler()
	_, addr := startServer(t, h, nil)
	c := dialTest(t, addr, false)
	c.connect("live", "rtmp://127.0.0.1/live")
	c.publish("fast")
	c.send(msgWindowAckSize, 2, 0, 0, be32(64<<10))
	c.setChunkSize(64 << 10)
	body := make([]byte, 10<<10)
	body[0], body[1] = 0x17, 1
	for i := range 30 { // 300 KiB and 30 s of media at once
		c.send(msgVideo, 6, rawStreamID, uint32(i)*1000, body)
	}
	sent := time.Now()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		msg, err := c.r.Read()
		if err != nil {
			t.Fatalf("no acknowledgement of everything after the publisher went quiet: %v", err)
		}
		if msg.Type != msgAcknowledgement {
			continue
		}
		// The first one may come before the publish is 3 s ahead of real time; the
		// held one (sent without its window filled up) acknowledges everything.
		n := binary.BigEndian.Uint32(msg.Body)
		if n < 300<<10 {
			continue
		}
		t.Logf("acknowledged %d bytes %v after the last write", n, time.Since(sent).Round(time.Millisecond))
		return
	}
}
