package rtmp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/livrec/livrec/internal/flv"
)

// Client side: an RTMP publisher that sends FLV tags as they are.
//
// gortmplib's Client/Writer is not used for the same reason as its ServerConn: it parses
// media into typed messages (and refuses FLV codec id 9), while tests and `livrec bench`
// need to push arbitrary tag bodies byte for byte. Reading reuses rawmessage; writing is
// our own chunker, which writes a message's chunks into one buffered writer without any
// allocation (rawmessage.Writer allocates per chunk and flushes per message anyway).

// Default values of PublishOptions.
const (
	DefaultPublishTimeout   = 10 * time.Second
	DefaultPublishChunkSize = 4096
	DefaultFlashVer         = "FMLE/3.0 (compatible; livrec)"
)

// Chunk streams used by the publisher.
const (
	clientCommandChunkStream = 3 // NetConnection commands (message stream 0)
	clientAudioChunkStream   = 4
	clientStreamChunkStream  = 5 // NetStream commands and data messages
	clientVideoChunkStream   = 6
)

// Transaction ids of our calls.
const (
	txConnect       = 1
	txReleaseStream = 2
	txFCPublish     = 3
	txCreateStream  = 4
	txPublish       = 5
	txFCUnpublish   = 6
	txDeleteStream  = 7
)

// PublishOptions configures Publish. The zero value selects the defaults.
type PublishOptions struct {
	// Timeout bounds the dial, handshake and publish negotiation (together), each write
	// of WriteTag (no byte accepted by the kernel for this long fails it), and the wait for
	// the server to close the connection in Close. Default 10 s.
	Timeout time.Duration
	// ChunkSize is the outgoing chunk size announced with Set Chunk Size (128 to
	// 16,777,215; default 4096).
	ChunkSize uint32
	// FlashVer is the connect command's flashVer (default "FMLE/3.0 (compatible; livrec)").
	FlashVer string
	// Logger receives debug messages and server error statuses; nil discards them.
	Logger *slog.Logger
}

// StatusError is an error status or call error returned by the server.
type StatusError struct {
	Command     string // the call that failed: "connect", "createStream", "publish"; "" after the publish started
	Level       string // "error" usually
	Code        string // e.g. "NetStream.Publish.BadName"
	Description string
}

func (e *StatusError) Error() string {
	what := e.Command
	if what == "" {
		what = "server status"
	}
	s := "rtmp: " + what + " refused: " + e.Code
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// ErrPublisherClosed is returned by WriteTag after Close.
var ErrPublisherClosed = errors.New("rtmp: publisher closed")

// Publisher is a live RTMP publish. WriteTag and Close may be called from one goroutine at
// a time (WriteTag calls are serialised internally, so concurrent use is safe, but the
// tags' order is then undefined). A goroutine reads whatever the server sends for the whole
// life of the connection: it answers pings, acknowledges received bytes, follows chunk and
// window size changes and records error statuses, so the server's data never stays
// unread.
type Publisher struct {
	nc      net.Conn
	log     *slog.Logger
	timeout time.Duration
	stream  string // publish name (with query)
	msid    uint32 // our message stream id, on the wire

	// Written under wmu.
	wmu       sync.Mutex
	bw        *bufio.Writer
	hdr       [16]byte
	chunkSize int
	werr      error // sticky write error
	closed    bool

	// Control replies queued by the read goroutine (pongs, acknowledgements); written by
	// whoever holds wmu next.
	ctlMu      sync.Mutex
	ctlPending []ctlMsg
	hasCtl     atomic.Bool

	// Read goroutine.
	r         *rawmessage.Reader
	cmds      chan command  // replies and statuses while Publish negotiates
	setupOver chan struct{} // closed when Publish returns
	closing   atomic.Bool   // Close started: read until EOF, write nothing more
	done      chan struct{} // closed when the read goroutine ends
	readErr   error         // why it ended (valid after done)
	status    atomic.Pointer[StatusError]
	closeOnce sync.Once
	closeErr  error
}

type ctlMsg struct {
	typ  uint8
	n    uint8
	body [6]byte
}

// setDataFrame is the AMF0 string "@setDataFrame" that precedes onMetaData over RTMP.
var setDataFrame = []byte{amfString, 0, 13, '@', 's', 'e', 't', 'D', 'a', 't', 'a', 'F', 'r', 'a', 'm', 'e'}

// publishTarget is the parsed publish URL.
type publishTarget struct {
	addr   string // host:port to dial
	app    string
	tcURL  string
	stream string // publish name, with the query
}

// parsePublishURL splits rtmp://host[:port]/app/stream[?query]: the app is the first path
// segment, the stream name the rest. The query is sent both in the tcUrl and in the
// publish name (servers read it from either).
func parsePublishURL(rawURL string) (publishTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return publishTarget{}, fmt.Errorf("rtmp: bad URL: %w", err)
	}
	if u.Scheme != "rtmp" {
		return publishTarget{}, fmt.Errorf("rtmp: unsupported URL scheme %q (only rtmp)", u.Scheme)
	}
	if u.Host == "" {
		return publishTarget{}, fmt.Errorf("rtmp: URL %q has no host", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "1935")
	}
	app, stream, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if app == "" || stream == "" {
		return publishTarget{}, fmt.Errorf("rtmp: URL %q needs the form rtmp://host/app/stream", rawURL)
	}
	t := publishTarget{addr: addr, app: app, tcURL: "rtmp://" + u.Host + "/" + app, stream: stream}
	if u.RawQuery != "" {
		t.tcURL += "?" + u.RawQuery
		t.stream += "?" + u.RawQuery
	}
	return t, nil
}

// Publish connects to rawURL (rtmp://host[:port]/app/stream[?query]) and negotiates a
// publish: handshake, Set Chunk Size, connect, releaseStream, FCPublish, createStream and
// publish. It returns once the server sent NetStream.Publish.Start. An error status or
// call error of the server is returned as a *StatusError. ctx bounds the negotiation only.
func Publish(ctx context.Context, rawURL string, opt PublishOptions) (*Publisher, error) {
	target, err := parsePublishURL(rawURL)
	if err != nil {
		return nil, err
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultPublishTimeout
	}
	chunkSize := opt.ChunkSize
	if chunkSize == 0 {
		chunkSize = DefaultPublishChunkSize
	}
	if chunkSize < 128 || chunkSize > 0xFFFFFF {
		return nil, fmt.Errorf("rtmp: chunk size %d out of range", chunkSize)
	}
	flashVer := opt.FlashVer
	if flashVer == "" {
		flashVer = DefaultFlashVer
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("url", redactURL(rawURL))

	deadline := time.Now().Add(timeout)
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", target.addr)
	if err != nil {
		return nil, fmt.Errorf("rtmp: dial: %w", err)
	}

	p := &Publisher{
		nc:        nc,
		log:       log,
		timeout:   timeout,
		stream:    target.stream,
		bw:        bufio.NewWriterSize(nc, 32<<10),
		chunkSize: int(chunkSize),
		cmds:      make(chan command), // unbuffered: a reply is either taken by await or handled after setup
		setupOver: make(chan struct{}),
		done:      make(chan struct{}),
	}
	if err := p.negotiate(ctx, deadline, target, flashVer); err != nil {
		close(p.setupOver)
		nc.Close()
		if p.r != nil {
			<-p.done
		}
		return nil, err
	}
	close(p.setupOver)
	return p, nil
}

// redactURL drops the query (it may carry credentials) for logging.
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?…"
	}
	return s
}

func (p *Publisher) negotiate(ctx context.Context, deadline time.Time, t publishTarget, flashVer string) error {
	// Deadlines bound every blocking step; cancelling ctx expires them at once.
	p.nc.SetDeadline(deadline)
	var cancelled atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		cancelled.Store(true)
		p.nc.SetDeadline(time.Unix(1, 0))
	})
	wrap := func(err error) error {
		if cancelled.Load() {
			return ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("rtmp: publish negotiation timed out after %v: %w", p.timeout, err)
		}
		return err
	}

	bc := bytecounter.NewReadWriter(p.nc)
	if _, _, err := handshake.DoClient(bc, false, false); err != nil {
		if !stop() {
			return ctx.Err()
		}
		return wrap(fmt.Errorf("rtmp: handshake: %w", err))
	}
	p.r = rawmessage.NewReader(bc, bc.Reader, p.queueAck)
	go p.readLoop()

	err := p.negotiateCommands(t, flashVer)
	if !stop() || cancelled.Load() {
		// ctx was cancelled: its deadline may be in place whatever happened.
		return ctx.Err()
	}
	if err != nil {
		return wrap(err)
	}
	p.nc.SetDeadline(time.Time{})
	return nil
}

func (p *Publisher) negotiateCommands(t publishTarget, flashVer string) error {
	p.wmu.Lock()
	err := p.writeMsgLocked(controlChunkStream, msgSetChunkSize, 0, 0, be32(uint32(p.chunkSize)), nil)
	if err == nil {
		err = p.writeCommandLocked(clientCommandChunkStream, 0, "connect", float64(txConnect), amf0.Object{
			{Key: "app", Value: t.app},
			{Key: "type", Value: "nonprivate"},
			{Key: "flashVer", Value: flashVer},
			{Key: "tcUrl", Value: t.tcURL},
			{Key: "fourCcList", Value: amf0.StrictArray{"avc1", "hvc1", "av01", "vp09"}},
		})
	}
	p.wmu.Unlock()
	if err != nil {
		return err
	}
	if _, err := p.await("connect", txConnect, false); err != nil {
		return err
	}

	p.wmu.Lock()
	err = p.writeCommandLocked(clientCommandChunkStream, 0, "releaseStream", float64(txReleaseStream), nil, t.stream)
	if err == nil {
		err = p.writeCommandLocked(clientCommandChunkStream, 0, "FCPublish", float64(txFCPublish), nil, t.stream)
	}
	if err == nil {
		err = p.writeCommandLocked(clientCommandChunkStream, 0, "createStream", float64(txCreateStream), nil)
	}
	p.wmu.Unlock()
	if err != nil {
		return err
	}
	res, err := p.await("createStream", txCreateStream, false)
	if err != nil {
		return err
	}
	sid := 1.0
	if len(res.Args) > 0 {
		if v, ok := res.Args[0].(float64); ok && v >= 0 && v < 1<<31 {
			sid = v
		}
	}
	p.msid = uint32(sid)

	p.wmu.Lock()
	err = p.writeCommandLocked(clientStreamChunkStream, p.msid, "publish", float64(txPublish), nil, t.stream, "live")
	p.wmu.Unlock()
	if err != nil {
		return err
	}
	_, err = p.await("publish", txPublish, true)
	return err
}

// await waits for the _result of call tx (or, with status, for NetStream.Publish.Start).
// _error replies and error statuses become a *StatusError.
func (p *Publisher) await(call string, tx float64, status bool) (command, error) {
	for {
		select {
		case cmd := <-p.cmds:
			if done, err := matchReply(call, tx, status, &cmd); done {
				return cmd, err
			}
		case <-p.done:
			// p.cmds is unbuffered: every reply read before the end was taken above.
			err := p.readErr
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("rtmp: server closed the connection during %s", call)
			}
			return command{}, err
		}
	}
}

// matchReply reports whether cmd ends the wait for call (and with which error).
func matchReply(call string, tx float64, status bool, cmd *command) (bool, error) {
	switch cmd.Name {
	case "_result":
		return !status && cmd.TxID == tx, nil
	case "_error":
		if cmd.TxID == tx {
			return true, statusError(call, cmd)
		}
	case "onStatus":
		info := cmdInfo(cmd)
		level, _ := info.GetString("level")
		code, _ := info.GetString("code")
		if level == "error" {
			return true, statusError(call, cmd)
		}
		if status && code == "NetStream.Publish.Start" {
			return true, nil
		}
	}
	return false, nil
}

// cmdInfo returns the info object of a reply or status: the first object argument, else
// the command object.
func cmdInfo(c *command) amf0.Object {
	for _, a := range c.Args {
		switch o := a.(type) {
		case amf0.Object:
			return o
		case amf0.ECMAArray:
			return amf0.Object(o)
		}
	}
	return c.Object
}

func statusError(call string, c *command) *StatusError {
	info := cmdInfo(c)
	e := &StatusError{Command: call}
	e.Level, _ = info.GetString("level")
	e.Code, _ = info.GetString("code")
	e.Description, _ = info.GetString("description")
	if e.Code == "" {
		e.Code = c.Name
	}
	return e
}

// readLoop reads and handles everything the server sends until the connection ends.
func (p *Publisher) readLoop() {
	defer close(p.done)
	for {
		msg, err := p.r.Read()
		if err == nil {
			err = p.handleMessage(msg)
		}
		if err != nil {
			p.readErr = err
			if !p.closing.Load() {
				// The server went away or misbehaved: fail pending and future writes now.
				p.log.Debug("rtmp publisher: connection ended by server", "reason", err)
				p.nc.Close()
			}
			return
		}
	}
}

func (p *Publisher) handleMessage(msg *rawmessage.Message) error {
	body := msg.Body
	switch msg.Type {
	case msgSetChunkSize:
		if len(body) != 4 {
			return fmt.Errorf("rtmp: Set Chunk Size with %d-byte body", len(body))
		}
		v := binary.BigEndian.Uint32(body) & 0x7FFFFFFF
		if v == 0 {
			return errors.New("rtmp: Set Chunk Size 0")
		}
		return p.r.SetChunkSize(v)
	case msgAbort:
		if len(body) == 4 {
			p.r.AbortChunkStream(binary.BigEndian.Uint32(body))
		}
	case msgWindowAckSize:
		if len(body) == 4 {
			if v := binary.BigEndian.Uint32(body); v > 0 {
				p.r.SetWindowAckSize(v)
			}
		}
	case msgUserControl:
		if len(body) == 6 && binary.BigEndian.Uint16(body) == ucPingRequest {
			var m ctlMsg
			m.typ, m.n = msgUserControl, 6
			binary.BigEndian.PutUint16(m.body[:], ucPingResponse)
			copy(m.body[2:], body[2:6])
			p.queueControl(m)
		}
	case msgCommandAMF0, msgCommandAMF3:
		if msg.Type == msgCommandAMF3 {
			if len(body) < 1 {
				return nil
			}
			body = body[1:]
		}
		cmd, err := parseCommand(body)
		if err != nil {
			p.log.Debug("rtmp publisher: undecodable command from server", "err", err)
			return nil
		}
		p.handleCommand(cmd)
	}
	// Acknowledgement, Set Peer Bandwidth, data, media: nothing to do.
	return nil
}

func (p *Publisher) handleCommand(cmd command) {
	select {
	case <-p.setupOver:
	default:
		select {
		case p.cmds <- cmd:
			return
		case <-p.setupOver:
		}
	}
	if cmd.Name != "onStatus" {
		return
	}
	info := cmdInfo(&cmd)
	level, _ := info.GetString("level")
	code, _ := info.GetString("code")
	if level == "error" {
		e := statusError("", &cmd)
		p.status.Store(e)
		p.log.Warn("rtmp publisher: server error status", "code", e.Code, "description", e.Description)
	} else {
		p.log.Debug("rtmp publisher: server status", "code", code)
	}
}

// queueAck is rawmessage.Reader's callback when we owe the server an acknowledgement.
func (p *Publisher) queueAck(count uint32) error {
	var m ctlMsg
	m.typ, m.n = msgAcknowledgement, 4
	binary.BigEndian.PutUint32(m.body[:], count)
	p.queueControl(m)
	return nil
}

// queueControl queues a control reply and writes it at once unless a writer is busy, in
// which case that writer sends it when it is done (see writeTail). The read goroutine
// never waits for a writer, so it keeps draining the connection.
func (p *Publisher) queueControl(m ctlMsg) {
	if p.closing.Load() {
		return
	}
	p.ctlMu.Lock()
	if len(p.ctlPending) < 64 { // a server flooding pings gets a subset answered
		p.ctlPending = append(p.ctlPending, m)
	}
	p.ctlMu.Unlock()
	p.hasCtl.Store(true)
	if p.wmu.TryLock() {
		p.flushControlLocked()
		p.wmu.Unlock()
	}
}

// flushControlLocked writes the queued control replies.
func (p *Publisher) flushControlLocked() {
	if !p.hasCtl.Swap(false) {
		return
	}
	p.ctlMu.Lock()
	pending := p.ctlPending
	p.ctlPending = p.ctlPending[:0:0]
	p.ctlMu.Unlock()
	if p.werr != nil || p.closed || len(pending) == 0 {
		return
	}
	// The deadline of the last WriteTag may have expired long ago (an idle publisher).
	p.nc.SetWriteDeadline(time.Now().Add(p.timeout))
	for i := range pending {
		m := &pending[i]
		p.writeMsgLocked(controlChunkStream, m.typ, 0, 0, m.body[:m.n], nil)
	}
	p.flushLocked()
}

// writeTail sends control replies queued while the caller held wmu.
func (p *Publisher) writeTail() {
	if p.hasCtl.Load() && p.wmu.TryLock() {
		p.flushControlLocked()
		p.wmu.Unlock()
	}
}

// writeMsgLocked writes one message, body a followed by b, as chunks into the buffered
// writer: a type 0 chunk header (absolute timestamp) and type 3 continuation headers.
// Errors are sticky in the bufio.Writer and surface in flushLocked.
func (p *Publisher) writeMsgLocked(csid byte, typ uint8, msid, ts uint32, a, b []byte) error {
	if p.werr != nil {
		return p.werr
	}
	n := len(a) + len(b)
	if n > 0xFFFFFF {
		return fmt.Errorf("rtmp: message of %d bytes exceeds 16 MiB", n)
	}
	ext := ts >= 0xFFFFFF
	t24 := min(ts, 0xFFFFFF)
	h := append(p.hdr[:0], csid,
		byte(t24>>16), byte(t24>>8), byte(t24),
		byte(n>>16), byte(n>>8), byte(n), typ,
		byte(msid), byte(msid>>8), byte(msid>>16), byte(msid>>24)) // little-endian
	if ext {
		h = binary.BigEndian.AppendUint32(h, ts)
	}
	p.bw.Write(h)
	left := p.chunkSize
	for len(a)+len(b) > 0 {
		if left == 0 {
			h = append(p.hdr[:0], 0xC0|csid)
			if ext {
				h = binary.BigEndian.AppendUint32(h, ts)
			}
			p.bw.Write(h)
			left = p.chunkSize
		}
		if len(a) > 0 {
			k := min(left, len(a))
			p.bw.Write(a[:k])
			a, left = a[k:], left-k
			continue
		}
		k := min(left, len(b))
		p.bw.Write(b[:k])
		b, left = b[k:], left-k
	}
	return nil
}

// flushLocked flushes the buffered writer, making a failure sticky.
func (p *Publisher) flushLocked() error {
	if p.werr != nil {
		return p.werr
	}
	if err := p.bw.Flush(); err != nil {
		p.werr = p.connError(err)
		return p.werr
	}
	return nil
}

// connError explains a write error: if the server ended the connection, say so.
func (p *Publisher) connError(err error) error {
	select {
	case <-p.done:
		if s := p.status.Load(); s != nil {
			return fmt.Errorf("rtmp: connection closed by server after %w", s)
		}
		if p.readErr != nil && !errors.Is(p.readErr, io.EOF) && !errors.Is(p.readErr, net.ErrClosed) {
			return fmt.Errorf("rtmp: connection closed: %v (write: %w)", p.readErr, err)
		}
		return fmt.Errorf("rtmp: connection closed by server: %w", err)
	default:
		return fmt.Errorf("rtmp: write: %w", err)
	}
}

func (p *Publisher) writeCommandLocked(csid byte, msid uint32, vals ...any) error {
	body, err := amf0.Data(vals).Marshal()
	if err != nil {
		return err
	}
	if err := p.writeMsgLocked(csid, msgCommandAMF0, msid, 0, body, nil); err != nil {
		return err
	}
	return p.flushLocked()
}

// WriteTag sends one FLV tag on the publish: audio (8) and video (9) tags as audio and
// video messages with their bodies untouched, whatever the codec; an onMetaData script
// tag (18) as an "@setDataFrame" data message, other script tags as they are. The tag is
// flushed to the connection before WriteTag returns. It does not allocate.
func (p *Publisher) WriteTag(t flv.Tag) error {
	var csid byte
	var prefix []byte
	switch t.Type {
	case flv.TagAudio:
		csid = clientAudioChunkStream
	case flv.TagVideo:
		csid = clientVideoChunkStream
	case flv.TagScript:
		csid = clientStreamChunkStream
		if hasAMF0StringPrefix(t.Body, "onMetaData") {
			prefix = setDataFrame
		}
	default:
		return fmt.Errorf("rtmp: cannot publish tag type %d", t.Type)
	}

	p.wmu.Lock()
	if p.closed {
		p.wmu.Unlock()
		return ErrPublisherClosed
	}
	if p.werr == nil {
		select {
		case <-p.done:
			p.werr = p.connError(io.ErrClosedPipe)
		default:
		}
	}
	if p.werr != nil {
		err := p.werr
		p.wmu.Unlock()
		return err
	}
	p.nc.SetWriteDeadline(time.Now().Add(p.timeout))
	p.flushControlLocked()
	err := p.writeMsgLocked(csid, t.Type, p.msid, t.Timestamp, prefix, t.Body)
	if err == nil {
		err = p.flushLocked()
	}
	p.wmu.Unlock()
	p.writeTail()
	return err
}

// Status returns the last error status the server sent after the publish started (nil if
// none).
func (p *Publisher) Status() *StatusError { return p.status.Load() }

// Close ends the publish: FCUnpublish and deleteStream, then a graceful close (shut down
// our write side and read until the server closes, for at most the Timeout), so that no
// unread server data makes the kernel reset the connection and drop our unsent tail. It
// returns nil if every tag was sent and the server closed the connection in response; an
// error if a write had failed, the connection had been lost before, or the server did not
// close in time. Close is idempotent.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.close() })
	return p.closeErr
}

func (p *Publisher) close() error {
	p.wmu.Lock()
	werr := p.werr
	lostBefore := false
	select {
	case <-p.done:
		lostBefore = true
	default:
	}
	if werr == nil && !lostBefore {
		p.nc.SetWriteDeadline(time.Now().Add(p.timeout))
		p.flushControlLocked()
		if err := p.writeCommandLocked(clientCommandChunkStream, 0, "FCUnpublish", float64(txFCUnpublish), nil, p.stream); err == nil {
			p.writeCommandLocked(clientStreamChunkStream, p.msid, "deleteStream", float64(txDeleteStream), nil, float64(p.msid))
		}
		werr = p.werr
	}
	p.closing.Store(true)
	p.closed = true
	p.wmu.Unlock()

	var err error
	switch {
	case werr != nil:
		err = werr
	case lostBefore:
		err = p.connError(io.ErrClosedPipe)
	default:
		err = p.shutdown()
	}
	p.nc.Close()
	<-p.done
	return err
}

// shutdown half-closes the connection and drains it until the server closes its side.
func (p *Publisher) shutdown() error {
	cw, ok := p.nc.(interface{ CloseWrite() error })
	if !ok {
		return nil
	}
	if err := cw.CloseWrite(); err != nil {
		return fmt.Errorf("rtmp: close: %w", err)
	}
	p.nc.SetReadDeadline(time.Now().Add(p.timeout))
	<-p.done
	err := p.readErr
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("rtmp: server did not close the connection within %v after the unpublish", p.timeout)
	}
	return fmt.Errorf("rtmp: close: %w", err)
}
