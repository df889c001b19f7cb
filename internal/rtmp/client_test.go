package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/livrec/livrec/internal/flv"
	"github.com/livrec/livrec/internal/testenv"
	"github.com/livrec/livrec/internal/testmedia"
)

const fixtureFLV = "../media/testdata/h264_aac.flv"

// readFLVTags returns the tags of an FLV file (bodies copied).
func readFLVTags(t testing.TB, path string) []flv.Tag {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := flv.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var tags []flv.Tag
	for {
		tg, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		tg.Body = bytes.Clone(tg.Body)
		tags = append(tags, tg)
	}
	return tags
}

// sameTags reports the first difference between what was sent and what a session got.
func sameTags(t *testing.T, want, got []flv.Tag) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("session got %d tags, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		w, g := want[i], got[i]
		if w.Type != g.Type || w.Timestamp != g.Timestamp || !bytes.Equal(w.Body, g.Body) {
			t.Fatalf("tag %d: got type %d ts %d %d bytes %x, want type %d ts %d %d bytes %x",
				i, g.Type, g.Timestamp, len(g.Body), head(g.Body), w.Type, w.Timestamp, len(w.Body), head(w.Body))
		}
	}
}

func testPublishOptions(t testing.TB) PublishOptions {
	return PublishOptions{Timeout: 5 * time.Second, Logger: testLogger(t)}
}

func TestPublishFixture(t *testing.T) {
	t.Cleanup(checkGoroutines(t))
	h := newRecHandler()
	_, addr := startServer(t, h, nil)
	tags := readFLVTags(t, fixtureFLV)

	p, err := Publish(context.Background(), "rtmp://"+addr+"/live/cam?vhost=v.example&token=a%20b", testPublishOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	s := h.waitPublish(t)
	for _, tg := range tags {
		if err := p.WriteTag(tg); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p.WriteTag(tags[1]); !errors.Is(err, ErrPublisherClosed) {
		t.Errorf("WriteTag after Close: %v", err)
	}
	if err := s.waitClosed(t, 5*time.Second); err != nil {
		t.Errorf("session closed with %v, want a clean unpublish", err)
	}
	sameTags(t, tags, s.snapshot())

	req := h.requests()[0]
	if req.App != "live" || req.Stream != "cam" || req.Domain != "v.example" ||
		req.Args.Get("token") != "a b" || req.PublishType != "live" ||
		req.TcURL != "rtmp://"+addr+"/live?vhost=v.example&token=a%20b" {
		t.Errorf("request %+v", req)
	}
}

// TestPublishFile publishes with the file helper against a server that acknowledges
// every 4 KiB and uses 128-byte chunks, so the publisher must keep reading while it
// writes; the graceful close must deliver the tail.
func TestPublishFile(t *testing.T) {
	t.Cleanup(checkGoroutines(t))
	h := newRecHandler()
	_, addr := startServer(t, h, func(s *Server) {
		s.WindowAckSize = 4096
		s.ChunkSize = 128
	})
	tags := readFLVTags(t, fixtureFLV)
	st, err := PublishFile(context.Background(), "rtmp://"+addr+"/app/file", fixtureFLV, false, testPublishOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	s := h.waitPublish(t)
	if err := s.waitClosed(t, 5*time.Second); err != nil {
		t.Errorf("session closed with %v", err)
	}
	sameTags(t, tags, s.snapshot())
	var bodyBytes int64
	for _, tg := range tags {
		bodyBytes += int64(len(tg.Body))
	}
	if st.Tags != len(tags) || st.Bytes != bodyBytes || st.MediaDuration != 2077*time.Millisecond {
		t.Errorf("stats %+v, want %d tags %d bytes 2.077s", st, len(tags), bodyBytes)
	}
}

func TestPublishFileRealtime(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2 s")
	}
	h := newRecHandler()
	_, addr := startServer(t, h, nil)
	start := time.Now()
	st, err := PublishFile(context.Background(), "rtmp://"+addr+"/app/rt", fixtureFLV, true, testPublishOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	if el < st.MediaDuration || el > st.MediaDuration+time.Second {
		t.Errorf("real-time push of %v media took %v", st.MediaDuration, el)
	}
	s := h.waitPublish(t)
	s.waitClosed(t, 5*time.Second)
	sameTags(t, readFLVTags(t, fixtureFLV), s.snapshot())

	// Cancelling the context stops the push early.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	st, err = PublishFile(ctx, "rtmp://"+addr+"/app/rt2", fixtureFLV, true, testPublishOptions(t))
	if !errors.Is(err, context.DeadlineExceeded) || st.Tags == 0 || st.MediaDuration > 500*time.Millisecond {
		t.Errorf("cancelled push: %+v, %v", st, err)
	}
	s = h.waitPublish(t)
	if err := s.waitClosed(t, 5*time.Second); err != nil {
		t.Errorf("cancelled push: session closed with %v, want a clean unpublish", err)
	}
}

// TestPublishBodies sends tag bodies of codecs and shapes the server and gortmplib know
// nothing about, large bodies over many chunks, and extended timestamps.
func TestPublishBodies(t *testing.T) {
	h := newRecHandler()
	_, addr := startServer(t, h, nil)
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	md := amfBytes(t, "onMetaData", amf0.ECMAArray{{Key: "width", Value: 320.0}, {Key: "videocodecid", Value: 12.0}})
	tags := []flv.Tag{
		{Type: flv.TagScript, Timestamp: 0, Body: md},
		{Type: flv.TagVideo, Timestamp: 0, Body: flv.AppendVideoHeader(nil, true, flv.CodecIDHEVC, 0, 0)},
		{Type: flv.TagVideo, Timestamp: 0, Body: append(flv.AppendVideoHeader(nil, true, flv.CodecIDHEVC, 1, 80), 0, 0, 0, 3, 0x26, 1, 0xaf)},
		{Type: flv.TagVideo, Timestamp: 40, Body: append(flv.AppendVideoExHeader(nil, true, flv.VideoExSequenceStart, flv.FourCCHEVC, 0), 1, 2, 3)},
		{Type: flv.TagVideo, Timestamp: 80, Body: append(flv.AppendVideoExHeader(nil, false, flv.VideoExCodedFramesX, flv.FourCCHEVC, 0), big[:5000]...)},
		{Type: flv.TagVideo, Timestamp: 120, Body: append(flv.AppendVideoHeader(nil, true, flv.CodecIDMPEG4, 1, 0), 0, 0, 1, 0xb6, 0x10)},
		{Type: flv.TagAudio, Timestamp: 100, Body: append(flv.AppendAudioExHeader(nil, flv.AudioExCodedFrames, flv.FourCCOpus), 9, 9)},
		{Type: flv.TagAudio, Timestamp: 90, Body: []byte{0x2f, 0xff, 0xfb}}, // MP3, backwards timestamp
		{Type: flv.TagVideo, Timestamp: 160, Body: big},
		{Type: flv.TagScript, Timestamp: 200, Body: amfBytes(t, "onCuePoint", "x")},
		{Type: flv.TagVideo, Timestamp: 0xFFFFFE, Body: big[:1000]},
		{Type: flv.TagAudio, Timestamp: 0xFFFFFF, Body: big[:129]},
		{Type: flv.TagVideo, Timestamp: 0x12345678, Body: big[:20000]},
		{Type: flv.TagAudio, Timestamp: 0xFFFFFFFF, Body: []byte{0xaf, 1, 2}},
		{Type: flv.TagVideo, Timestamp: 5, Body: big[:129]},
	}
	for _, cs := range []uint32{128, 0, 65536} {
		t.Run(fmt.Sprint("chunk", cs), func(t *testing.T) {
			opt := testPublishOptions(t)
			opt.ChunkSize = cs
			p, err := Publish(context.Background(), "rtmp://"+addr+"/app/bodies", opt)
			if err != nil {
				t.Fatal(err)
			}
			s := h.waitPublish(t)
			for _, tg := range tags {
				if err := p.WriteTag(tg); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.WriteTag(flv.Tag{Type: 7, Body: []byte{1}}); err == nil {
				t.Error("tag type 7 accepted")
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.waitClosed(t, 5*time.Second); err != nil {
				t.Errorf("session closed with %v", err)
			}
			sameTags(t, tags, s.snapshot())
		})
	}
}

func TestClientPublishRefused(t *testing.T) {
	t.Cleanup(checkGoroutines(t))
	h := newRecHandler()
	_, addr := startServer(t, h, nil)
	for _, tc := range []struct {
		refuse error
		code   string
	}{
		{fmt.Errorf("no rule for this key: %w", ErrBadName), "NetStream.Publish.BadName"},
		{errors.New("quota exceeded"), "NetStream.Publish.Denied"},
	} {
		h.mu.Lock()
		h.refuse = tc.refuse
		h.mu.Unlock()
		_, err := Publish(context.Background(), "rtmp://"+addr+"/live/x", testPublishOptions(t))
		var se *StatusError
		if !errors.As(err, &se) {
			t.Fatalf("Publish returned %v, want a *StatusError", err)
		}
		if se.Command != "publish" || se.Code != tc.code || se.Level != "error" ||
			se.Description != tc.refuse.Error() || !strings.Contains(err.Error(), tc.code) ||
			!strings.Contains(err.Error(), tc.refuse.Error()) {
			t.Errorf("error %q (%+v)", err, se)
		}
	}
}

func TestPublishBadURL(t *testing.T) {
	for _, u := range []string{"http://h/app/s", "rtmp:///app/s", "rtmp://h/app", "rtmp://h/", "rtmp://h/app/", "::"} {
		if _, err := Publish(context.Background(), u, PublishOptions{}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	for _, tc := range []struct{ in, addr, app, tcURL, stream string }{
		{"rtmp://h/live/s", "h:1935", "live", "rtmp://h/live", "s"},
		{"rtmp://h:19350/live/a/b?k=v&x=1", "h:19350", "live", "rtmp://h:19350/live?k=v&x=1", "a/b?k=v&x=1"},
		{"rtmp://[::1]/live/s", "[::1]:1935", "live", "rtmp://[::1]/live", "s"},
	} {
		got, err := parsePublishURL(tc.in)
		if err != nil || got.addr != tc.addr || got.app != tc.app || got.tcURL != tc.tcURL || got.stream != tc.stream {
			t.Errorf("%q: %+v %v", tc.in, got, err)
		}
	}
}

// TestPublishNegotiationTimeout: a server that accepts and says nothing.
func TestPublishNegotiationTimeout(t *testing.T) {
	t.Cleanup(checkGoroutines(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		for range len(accepted) {
			(<-accepted).Close()
		}
	}()
	url := "rtmp://" + l.Addr().String() + "/app/s"

	start := time.Now()
	_, err = Publish(context.Background(), url, PublishOptions{Timeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "timed out") || time.Since(start) > 2*time.Second {
		t.Errorf("Publish: %v after %v", err, time.Since(start))
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = Publish(ctx, url, PublishOptions{})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Errorf("Publish: %v after %v", err, time.Since(start))
	}
	l.Close()
}

// TestPublishServerGone: the server ends the connection during the publish (the session
// fails); writes then fail and so does Close.
func TestPublishServerGone(t *testing.T) {
	t.Cleanup(checkGoroutines(t))
	h := newRecHandler()
	h.newSess = func() *recSession {
		s := newRecSession()
		s.failAfter, s.tagErr = 3, errors.New("disk full")
		return s
	}
	_, addr := startServer(t, h, nil)
	p, err := Publish(context.Background(), "rtmp://"+addr+"/app/gone", testPublishOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	s := h.waitPublish(t)
	tag := flv.Tag{Type: flv.TagAudio, Body: []byte{0xaf, 1, 2, 3}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err = p.WriteTag(tag); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes still succeed 5 s after the server closed")
		}
		time.Sleep(time.Millisecond)
	}
	if !strings.Contains(err.Error(), "closed") {
		t.Errorf("WriteTag error %v", err)
	}
	if err := p.WriteTag(tag); err == nil {
		t.Error("write error not sticky")
	}
	if err := p.Close(); err == nil {
		t.Error("Close after a lost connection returned nil")
	}
	s.waitClosed(t, 5*time.Second)
}

// TestWriteTagAllocs: WriteTag allocates nothing. The server only discards bytes after
// the publish started, so that its own allocations are not counted.
func TestWriteTagAllocs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := &fakeServer{t: t, discard: true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		f.nc = nc
		f.serve(false)
	}()
	p, err := Publish(context.Background(), "rtmp://"+l.Addr().String()+"/app/allocs", testPublishOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	video := flv.Tag{Type: flv.TagVideo, Body: make([]byte, 10000)}
	md := flv.Tag{Type: flv.TagScript, Body: amfBytes(t, "onMetaData", amf0.ECMAArray{{Key: "width", Value: 1.0}})}
	n := testing.AllocsPerRun(200, func() {
		video.Timestamp += 40
		if err := p.WriteTag(video); err != nil {
			t.Fatal(err)
		}
		if err := p.WriteTag(md); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per WriteTag pair", n)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	<-done
}

// fakeServer is a scripted RTMP server on gortmplib's raw layers: it accepts one publish
// and tests the publisher's handling of what the server sends.
type fakeServer struct {
	t    *testing.T
	nc   net.Conn
	r    *rawmessage.Reader
	w    *rawmessage.Writer
	acks []uint32
	pong []uint32
	tags []flv.Tag
	cmds []string
	// discard makes the server read and drop everything after the publish started.
	discard bool
	// latePing, if set, is the delay after the publish start of a third ping (0x9abc).
	latePing time.Duration
}

func (f *fakeServer) send(csid byte, typ uint8, msid uint32, body []byte) {
	if err := f.w.Write(&rawmessage.Message{ChunkStreamID: csid, Type: typ, MessageStreamID: msid, Body: body}); err != nil {
		f.t.Errorf("fake server write: %v", err)
	}
}

func (f *fakeServer) call(csid byte, msid uint32, vals ...any) {
	f.send(csid, msgCommandAMF0, msid, amfBytes(f.t, vals...))
}

// serve runs the script until the client closes; errors are reported with t.Errorf.
func (f *fakeServer) serve(statusErr bool) {
	defer f.nc.Close()
	bc := bytecounter.NewReadWriter(f.nc)
	if _, _, err := handshake.DoServer(bc, false); err != nil {
		f.t.Errorf("fake server handshake: %v", err)
		return
	}
	f.w = rawmessage.NewWriter(bc, bc.Writer, false)
	f.r = rawmessage.NewReader(bc, bc.Reader, func(uint32) error { return nil })
	for {
		msg, err := f.r.Read()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				f.t.Errorf("fake server read: %v", err)
			}
			return
		}
		switch msg.Type {
		case msgSetChunkSize:
			f.r.SetChunkSize(binary.BigEndian.Uint32(msg.Body))
		case msgAcknowledgement:
			f.acks = append(f.acks, binary.BigEndian.Uint32(msg.Body))
		case msgUserControl:
			if binary.BigEndian.Uint16(msg.Body) == ucPingResponse {
				f.pong = append(f.pong, binary.BigEndian.Uint32(msg.Body[2:]))
			}
		case msgAudio, msgVideo, msgDataAMF0:
			f.tags = append(f.tags, flv.Tag{Type: msg.Type, Timestamp: uint32(msg.Timestamp / time.Millisecond), Body: msg.Body})
		case msgCommandAMF0:
			cmd, err := parseCommand(msg.Body)
			if err != nil {
				f.t.Errorf("fake server: %v", err)
				return
			}
			f.cmds = append(f.cmds, cmd.Name)
			switch cmd.Name {
			case "connect":
				// Small windows and chunks, a ping, and a padded call the client must
				// read (and acknowledge) before it gets its _result.
				f.send(2, msgWindowAckSize, 0, be32(1000))
				f.send(2, msgSetChunkSize, 0, be32(200))
				f.w.SetChunkSize(200)
				f.send(2, msgUserControl, 0, []byte{0, ucPingRequest, 0, 0, 0x12, 0x34})
				f.call(3, 0, "onBWDone", 0.0, nil, strings.Repeat("x", 3000))
				f.call(3, 0, "_result", cmd.TxID, amf0.Object{{Key: "fmsVer", Value: "fake"}},
					amf0.Object{{Key: "level", Value: "status"}, {Key: "code", Value: "NetConnection.Connect.Success"}})
			case "createStream":
				f.call(3, 0, "_result", cmd.TxID, nil, 7.0)
			case "publish":
				if msg.MessageStreamID != 7<<24 { // rawmessage reads the id big-endian
					f.t.Errorf("publish on message stream %#x", msg.MessageStreamID)
				}
				f.call(5, msg.MessageStreamID, "onStatus", 0.0, nil, amf0.Object{
					{Key: "level", Value: "status"}, {Key: "code", Value: "NetStream.Publish.Start"}})
				// Then ping again and pad past the acknowledgement window.
				f.send(2, msgUserControl, 0, []byte{0, ucPingRequest, 0, 0, 0x56, 0x78})
				f.call(3, 0, "onFoo", 0.0, nil, strings.Repeat("y", 3000))
				if f.latePing > 0 {
					time.AfterFunc(f.latePing, func() {
						f.send(2, msgUserControl, 0, []byte{0, ucPingRequest, 0, 0, 0x9a, 0xbc})
					})
				}
				if f.discard {
					buf := make([]byte, 64<<10)
					for {
						if _, err := f.nc.Read(buf); err != nil {
							return
						}
					}
				}
				if statusErr {
					f.call(5, msg.MessageStreamID, "onStatus", 0.0, nil, amf0.Object{
						{Key: "level", Value: "error"}, {Key: "code", Value: "NetStream.Publish.Failed"},
						{Key: "description", Value: "going away"}})
				}
			}
		}
	}
}

func TestPublishServerControl(t *testing.T) {
	t.Cleanup(checkGoroutines(t))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := &fakeServer{t: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		f.nc = nc
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		f.serve(true)
	}()

	p, err := Publish(context.Background(), "rtmp://"+l.Addr().String()+"/app/s", testPublishOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.msid != 7 {
		t.Errorf("stream id %d, want 7", p.msid)
	}
	tags := []flv.Tag{
		{Type: flv.TagVideo, Timestamp: 0, Body: bytes.Repeat([]byte{0x17}, 5000)},
		{Type: flv.TagAudio, Timestamp: 20, Body: []byte{0xaf, 1}},
	}
	// Wait until the read goroutine saw the error status sent after the publish start.
	for deadline := time.Now().Add(5 * time.Second); p.Status() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("error status not recorded")
		}
	}
	if s := p.Status(); s.Code != "NetStream.Publish.Failed" || s.Description != "going away" {
		t.Errorf("status %+v", s)
	}
	for _, tg := range tags {
		if err := p.WriteTag(tg); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	<-done
	if len(f.pong) != 2 || f.pong[0] != 0x1234 || f.pong[1] != 0x5678 {
		t.Errorf("pongs %x", f.pong)
	}
	if len(f.acks) == 0 {
		t.Error("no acknowledgement for 6 KB received with a 1000-byte window")
	}
	want := "connect releaseStream FCPublish createStream publish FCUnpublish deleteStream"
	if got := strings.Join(f.cmds, " "); got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	sameTags(t, tags, f.tags)
}

// TestPublishIdlePing: a ping arriving after the publisher sat idle for longer than its
// Timeout is still answered, and the publish goes on.
func TestPublishIdlePing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := &fakeServer{t: t, latePing: 700 * time.Millisecond}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		f.nc = nc
		f.serve(false)
	}()
	opt := testPublishOptions(t)
	opt.Timeout = 300 * time.Millisecond
	p, err := Publish(context.Background(), "rtmp://"+l.Addr().String()+"/app/s", opt)
	if err != nil {
		t.Fatal(err)
	}
	tag := flv.Tag{Type: flv.TagAudio, Body: []byte{0xaf, 1, 2}}
	if err := p.WriteTag(tag); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	tag.Timestamp = 1000
	if err := p.WriteTag(tag); err != nil {
		t.Fatalf("WriteTag after an idle second: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	<-done
	if len(f.pong) != 3 || f.pong[2] != 0x9abc {
		t.Errorf("pongs %x", f.pong)
	}
	if len(f.tags) != 2 {
		t.Errorf("%d tags received", len(f.tags))
	}
}

func TestPublishConnectRejected(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		bc := bytecounter.NewReadWriter(nc)
		if _, _, err := handshake.DoServer(bc, false); err != nil {
			return
		}
		w := rawmessage.NewWriter(bc, bc.Writer, false)
		r := rawmessage.NewReader(bc, bc.Reader, func(uint32) error { return nil })
		for {
			msg, err := r.Read()
			if err != nil {
				return
			}
			if msg.Type == msgSetChunkSize {
				r.SetChunkSize(binary.BigEndian.Uint32(msg.Body))
			}
			if msg.Type == msgCommandAMF0 {
				w.Write(&rawmessage.Message{ChunkStreamID: 3, Type: msgCommandAMF0, Body: amfBytes(t,
					"_error", 1.0, nil, amf0.Object{{Key: "level", Value: "error"},
						{Key: "code", Value: "NetConnection.Connect.Rejected"}, {Key: "description", Value: "bad app"}})})
			}
		}
	}()
	_, err = Publish(context.Background(), "rtmp://"+l.Addr().String()+"/app/s", testPublishOptions(t))
	var se *StatusError
	if !errors.As(err, &se) || se.Command != "connect" || se.Code != "NetConnection.Connect.Rejected" || se.Description != "bad app" {
		t.Errorf("Publish: %v", err)
	}
}

// TestPublishFileErrors: a missing file, a non-FLV file.
func TestPublishFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := PublishFile(context.Background(), "rtmp://127.0.0.1:1/a/b", filepath.Join(dir, "none.flv"), false, PublishOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.flv")
	os.WriteFile(bad, []byte("not an flv file"), 0o644)
	if _, err := PublishFile(context.Background(), "rtmp://127.0.0.1:1/a/b", bad, false, PublishOptions{}); !errors.Is(err, flv.ErrNotFLV) {
		t.Errorf("bad file: %v", err)
	}
}

// BenchmarkPublishWriteTag measures the publisher's cost per 4000-byte video tag, the
// server's ingest included (both ends run in this process).
func BenchmarkPublishWriteTag(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &Server{Handler: benchHandler{}, Logger: testLogger(b)}
	go s.Serve(l)
	defer s.Close()
	p, err := Publish(context.Background(), "rtmp://"+l.Addr().String()+"/app/bench", PublishOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	tag := flv.Tag{Type: flv.TagVideo, Body: make([]byte, 4000)}
	b.SetBytes(int64(len(tag.Body)))
	b.ReportAllocs()
	for b.Loop() {
		tag.Timestamp += 40
		if err := p.WriteTag(tag); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPublishTestmedia pushes the fixtures whose codecs gortmplib's message layer would
// not carry as they are (legacy HEVC id 12, Enhanced RTMP hvc1, MPEG-4 Part 2 id 9)
// through the publisher and the server, byte for byte.
func TestPublishTestmedia(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg)
	h := newRecHandler()
	_, addr := startServer(t, h, nil)
	dir := t.TempDir()
	for _, s := range []testmedia.Spec{
		{Video: testmedia.H265, Audio: testmedia.AAC, Seconds: 1},
		{Video: testmedia.H265Legacy, Audio: testmedia.MP3, Seconds: 1},
		{Video: testmedia.MPEG4, Audio: testmedia.MP3, Seconds: 1},
	} {
		t.Run(s.Video, func(t *testing.T) {
			path, err := testmedia.MakeFLV(dir, s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := PublishFile(context.Background(), "rtmp://"+addr+"/app/"+s.Video, path, false, testPublishOptions(t)); err != nil {
				t.Fatal(err)
			}
			sess := h.waitPublish(t)
			if err := sess.waitClosed(t, 5*time.Second); err != nil {
				t.Errorf("session closed with %v", err)
			}
			sameTags(t, readFLVTags(t, path), sess.snapshot())
		})
	}
}
