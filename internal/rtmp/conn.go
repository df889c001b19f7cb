package rtmp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/livrec/livrec/internal/flv"
)

// RTMP message types.
const (
	msgSetChunkSize     = 1
	msgAbort            = 2
	msgAcknowledgement  = 3
	msgUserControl      = 4
	msgWindowAckSize    = 5
	msgSetPeerBandwidth = 6
	msgAudio            = 8
	msgVideo            = 9
	msgDataAMF3         = 15
	msgCommandAMF3      = 17
	msgDataAMF0         = 18
	msgCommandAMF0      = 20
	msgAggregate        = 22
)

// User control event types.
const (
	ucStreamBegin  = 0
	ucPingRequest  = 6
	ucPingResponse = 7
)

const (
	controlChunkStream = 2 // protocol control and user control messages
	statusChunkStream  = 5 // onStatus messages

	// streamID is the only message stream we hand out.
	streamID       = 1
	maxCommandSize = 64 << 10
	// lingerTimeout bounds how long a refused connection is drained so that the client
	// reads our error status before the TCP connection is torn down.
	lingerTimeout = time.Second
)

// refusal is returned by the message loop after the client was sent an error status
// (publish refused, play, commands out of order); the connection then closes.
type refusal struct{ reason string }

func (r *refusal) Error() string { return "rtmp: " + r.reason }

// publishTimeoutError ends a connection that had no publish accepted within the
// server's PublishDeadline.
type publishTimeoutError struct {
	timeout time.Duration
	err     error
}

func (e *publishTimeoutError) Error() string {
	return fmt.Sprintf("rtmp: no publish within %v of connecting: %v", e.timeout, e.err)
}
func (e *publishTimeoutError) Unwrap() error { return e.err }

// sessionError carries an error returned by Session.Tag.
type sessionError struct{ err error }

func (e *sessionError) Error() string { return "session: " + e.err.Error() }
func (e *sessionError) Unwrap() error { return e.err }

// conn is one client connection. All of its state is owned by the goroutine running
// serve; only abort is called from elsewhere.
type conn struct {
	srv     *Server
	nc      net.Conn
	addr    string // client IP address (Server's per-address count)
	dc      *deadlineConn
	log     *slog.Logger
	aborted atomic.Bool

	bc *bytecounter.ReadWriter
	r  *chunkReader
	lr *lendReader // r's reader
	w  *rawmessage.Writer

	connected     bool
	app, tcURL    string
	streamCreated bool
	published     bool    // a publish was accepted on this connection (one at most)
	session       Session // non-nil while the publish is live
	req           *PublishRequest
	publishStart  time.Time
	tags          uint64

	// Media time received (first and last tag timestamps, ms); see sendAck.
	firstTS, lastTS uint32
	haveTS          bool
}

// readBufferSize is the size of the read buffers connections borrow (see readBufs): one
// read(2) takes a batch of up to this much (see batch). Lent, not owned, so it can be
// large: at 1000 × 1.5 Mbit/s of flv, lent 64 KiB buffers (batches of ~37 KB) cost ~20 %
// less CPU than owned 16 KiB ones, and owned 64 KiB ones ~6 % less.
const readBufferSize = 64 << 10

func newConn(s *Server, nc net.Conn) *conn {
	dc := &deadlineConn{Conn: nc, rt: s.readTimeout(), wt: s.writeTimeout(),
		pt: s.publishDeadline(), until: time.Now().Add(s.publishDeadline())}
	if tc, ok := nc.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			dc.raw, dc.onReadable = raw, dc.readable
		}
	}
	return &conn{
		srv: s,
		nc:  nc,
		dc:  dc,
		bc:  bytecounter.NewReadWriter(dc),
		log: s.logger().With("remote", remoteString(nc)),
	}
}

func remoteString(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// abort closes the connection from another goroutine (Server.Close).
func (c *conn) abort() {
	c.aborted.Store(true)
	c.nc.Close()
}

// serve runs the connection to its end and releases everything it holds.
func (c *conn) serve() {
	c.log.Debug("rtmp connection opened")
	err := c.classify(c.runRecover())
	hadSession := c.session != nil
	c.endSession(err)

	var ref *refusal
	if errors.As(err, &ref) && !c.aborted.Load() {
		c.lingerClose()
	} else {
		c.nc.Close()
	}

	attrs := []any{"reason", err, "bytes_in", c.bc.Reader.Count(), "bytes_out", c.bc.Writer.Count()}
	var pte *publishTimeoutError
	switch {
	case errors.As(err, &pte):
		c.srv.refused(RefusedPublishDeadline, c.nc) // counted and logged, rate-limited
		c.log.Debug("rtmp connection closed", attrs...)
	case ref != nil, hadSession, errors.Is(err, ErrServerClosed):
		// Already logged (refusal, end of the publish) or expected.
		c.log.Debug("rtmp connection closed", attrs...)
	case isDisconnect(err):
		// The normal end of a client that published (after deleteStream); without a
		// publish, a port probe or health check.
		if c.published {
			c.log.Info("rtmp connection closed", attrs...)
		} else {
			c.log.Debug("rtmp connection closed", attrs...)
		}
	default:
		c.log.Warn("rtmp connection closed", attrs...)
	}
}

// runRecover runs the message loop, turning a panic into an error as a last resort.
func (c *conn) runRecover() (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("rtmp connection panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("rtmp: internal error: %v", p)
		}
	}()
	return c.run()
}

// classify replaces low-level errors with ones that say what happened.
func (c *conn) classify(err error) error {
	var ne net.Error
	switch {
	case c.aborted.Load():
		return ErrServerClosed
	case isDisconnect(err):
		return fmt.Errorf("rtmp: client disconnected: %w", err)
	case errors.As(err, &ne) && ne.Timeout():
		if !c.published && !time.Now().Before(c.dc.until) {
			return &publishTimeoutError{c.dc.pt, err}
		}
		if c.dc.writeTimedOut.Load() {
			return fmt.Errorf("rtmp: client accepted no data for %v: %w", c.dc.wt, err)
		}
		return fmt.Errorf("rtmp: no data from client for %v: %w", c.dc.rt, err)
	}
	return err
}

// isDisconnect reports a peer that went away: closed (EOF) or reset the connection. A
// client that closes its socket with our last answers still unread makes its kernel send
// a reset, so ECONNRESET is as normal as EOF.
func isDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// endSession closes the live publish, if any, with err.
func (c *conn) endSession(err error) {
	s := c.session
	if s == nil {
		return
	}
	c.session = nil
	attrs := []any{"tags", c.tags, "duration", time.Since(c.publishStart).Round(time.Millisecond)}
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, "reason", err)
		var se *sessionError
		if !isDisconnect(err) && !errors.Is(err, ErrServerClosed) && !errors.As(err, &se) {
			level = slog.LevelWarn // a protocol error or timeout, not a client's normal end
		}
	}
	c.log.Log(context.Background(), level, "rtmp publish ended", attrs...)
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("Session.Close panicked", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	s.Close(err)
}

// lingerClose half-closes the connection and drains it for a short while, so that a
// client which is still sending receives our last status message rather than a reset.
func (c *conn) lingerClose() {
	defer c.nc.Close()
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	if cw.CloseWrite() != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20))
}

// run performs the handshake and then the message loop.
func (c *conn) run() error {
	keyIn, keyOut, err := handshake.DoServer(c.bc, false)
	if err != nil {
		return fmt.Errorf("rtmp handshake: %w", err)
	}
	var rw io.ReadWriter = c.bc
	var decrypt func(dst, src []byte)
	if keyIn != nil {
		r4, err := newRC4ReadWriter(c.bc, keyIn, keyOut)
		if err != nil {
			return fmt.Errorf("rtmp handshake: %w", err)
		}
		rw, decrypt = r4, r4.in.XORKeyStream
		c.log = c.log.With("encrypted", true)
	}
	c.w = rawmessage.NewWriter(rw, c.bc.Writer, false)
	// The reader reads below the byte counter (and the decryption) into lent buffers:
	// a batch of up to readBufferSize is one read(2); chunk payloads at least as large
	// are read into the message body directly.
	c.lr = newLendReader(c.dc, c.bc.Reader, decrypt)
	c.r = newChunkReader(c.lr, c.bc.Reader, c.sendAck)
	// Until a publish is accepted the peer is a stranger: its messages get memory only
	// as their bytes arrive (a header announcing a large message costs nothing).
	c.r.SetTrusted(false)
	// Acknowledge with our own window until the client announces one.
	c.r.SetWindowAckSize(c.srv.windowAckSize())

	for {
		msg, err := c.r.Read()
		if err != nil {
			return err
		}
		err = c.handleMessage(&msg)
		c.r.Release(msg.Body) // handled: the session copied what it keeps
		if err != nil {
			return err
		}
		if c.ackHeld() && !c.ahead() {
			if err := c.releaseAck(); err != nil {
				return err
			}
		}
	}
}

func (c *conn) handleMessage(msg *message) error {
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
		return c.r.SetChunkSize(v)

	case msgAbort:
		if len(body) != 4 {
			return fmt.Errorf("rtmp: Abort with %d-byte body", len(body))
		}
		c.r.AbortChunkStream(binary.BigEndian.Uint32(body))

	case msgAcknowledgement, msgSetPeerBandwidth:
		// Nothing to do: we send too little to need flow control.

	case msgWindowAckSize:
		if len(body) != 4 {
			return fmt.Errorf("rtmp: Window Acknowledgement Size with %d-byte body", len(body))
		}
		if v := binary.BigEndian.Uint32(body); v > 0 {
			c.r.SetWindowAckSize(v)
		}

	case msgUserControl:
		if len(body) < 2 {
			return fmt.Errorf("rtmp: user control message with %d-byte body", len(body))
		}
		if binary.BigEndian.Uint16(body) == ucPingRequest {
			if len(body) != 6 {
				return fmt.Errorf("rtmp: ping request with %d-byte body", len(body))
			}
			return c.writeUserControl(ucPingResponse, binary.BigEndian.Uint32(body[2:]))
		}
		// Stream begin/EOF/dry, set buffer length, ping response...: nothing to do.

	case msgAudio, msgVideo:
		if c.session != nil && len(body) > 0 {
			return c.deliver(msg.Type, msg.Timestamp, body)
		}

	case msgDataAMF0:
		if c.session != nil {
			return c.deliverData(msg.Timestamp, body)
		}

	case msgDataAMF3:
		// AMF3 data messages start with a format byte; we only understand AMF0 inside.
		if c.session != nil && len(body) > 1 && body[0] == 0 {
			return c.deliverData(msg.Timestamp, body[1:])
		}

	case msgCommandAMF0:
		return c.handleCommand(msg, body)

	case msgCommandAMF3:
		if len(body) < 1 {
			return errors.New("rtmp: empty AMF3 command")
		}
		return c.handleCommand(msg, body[1:])

	case msgAggregate:
		if c.session != nil {
			return c.deliverAggregate(msg.Timestamp, body)
		}

	default:
		// Shared objects and unknown types are ignored.
		c.log.Debug("rtmp message ignored", "type", msg.Type, "size", len(body))
	}
	return nil
}

// deliver hands one tag to the session. body is the message's (several tags of an
// aggregate message share it), which chunkReader reuses after the next Read: the
// session copies what it keeps (see Session.Tag).
func (c *conn) deliver(typ uint8, ts uint32, body []byte) error {
	c.tags++
	if !c.haveTS {
		c.firstTS, c.haveTS = ts, true
	}
	c.lastTS = ts
	if err := c.session.Tag(flv.Tag{Type: typ, Timestamp: ts, Body: body}); err != nil {
		return &sessionError{err}
	}
	return nil
}

// deliverData hands an AMF0 data message to the session as an FLV script tag:
// "@setDataFrame" is stripped (what follows is what an FLV file stores) and
// "@clearDataFrame" is dropped.
func (c *conn) deliverData(ts uint32, body []byte) error {
	const setDataFrame = "@setDataFrame"
	switch {
	case hasAMF0StringPrefix(body, setDataFrame):
		body = body[3+len(setDataFrame):]
	case hasAMF0StringPrefix(body, "@clearDataFrame"):
		return nil
	}
	if len(body) == 0 {
		return nil
	}
	return c.deliver(flv.TagScript, ts, body)
}

// deliverAggregate splits an aggregate message, a sequence of FLV tags (11-byte header,
// body, 4-byte back pointer). The first tag's timestamp is rebased to the message's.
func (c *conn) deliverAggregate(ts uint32, b []byte) error {
	var base uint32
	for first := true; len(b) > 0; first = false {
		if len(b) < 11 {
			return errors.New("rtmp: truncated aggregate message")
		}
		typ := b[0] & 0x1F
		size := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		tts := uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6]) | uint32(b[7])<<24
		if uint64(len(b)-11) < uint64(size) {
			return errors.New("rtmp: truncated aggregate message")
		}
		body := b[11 : 11+size]
		b = b[11+size:]
		if len(b) >= 4 {
			b = b[4:]
		} else {
			b = nil
		}
		if first {
			base = tts
		}
		t := ts + (tts - base)
		var err error
		switch typ {
		case msgAudio, msgVideo:
			if len(body) > 0 {
				err = c.deliver(typ, t, body)
			}
		case msgDataAMF0:
			err = c.deliverData(t, body)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *conn) handleCommand(msg *message, body []byte) error {
	if len(body) > maxCommandSize {
		return fmt.Errorf("rtmp: command message of %d bytes", len(body))
	}
	cmd, err := parseCommand(body)
	if err != nil {
		return fmt.Errorf("rtmp: bad command: %w", err)
	}

	if !c.connected && cmd.Name != "connect" {
		switch cmd.Name {
		case "publish":
			return c.refusePublish(msg, "NetStream.Publish.Denied", "publish before connect")
		case "play", "play2":
			return c.refusePlay(msg)
		}
		return fmt.Errorf("rtmp: command %q before connect", cmd.Name)
	}

	switch cmd.Name {
	case "connect":
		return c.onConnect(msg, &cmd)

	case "releaseStream":
		return c.writeResult(msg, cmd.TxID, nil, amf0.Undefined{})

	case "FCPublish":
		name, _ := cmd.stringArg(0)
		if err := c.writeCommand(msg.ChunkStreamID, 0, "onFCPublish", 0.0, nil, amf0.Object{
			{Key: "code", Value: "NetStream.Publish.Start"},
			{Key: "description", Value: name},
		}); err != nil {
			return err
		}
		return c.writeResult(msg, cmd.TxID, nil, amf0.Undefined{})

	case "createStream":
		c.streamCreated = true
		return c.writeResult(msg, cmd.TxID, nil, float64(streamID))

	case "publish":
		return c.onPublish(msg, &cmd)

	case "FCUnpublish", "deleteStream", "closeStream":
		if c.session != nil {
			c.log.Debug("rtmp unpublish", "command", cmd.Name)
			c.endSession(nil)
		}
		if cmd.Name == "FCUnpublish" {
			return c.writeResult(msg, cmd.TxID, nil, amf0.Undefined{})
		}
		return nil

	case "play", "play2":
		return c.refusePlay(msg)

	case "_result", "_error", "onStatus", "onBWDone", "_checkbw_result":
		// Replies and notifications: nothing to answer.
		return nil

	default:
		c.log.Debug("rtmp command ignored", "command", cmd.Name)
		// Answer calls that expect a reply so that a client waiting for one goes on.
		return c.writeResult(msg, cmd.TxID, nil, amf0.Undefined{})
	}
}

func (c *conn) onConnect(msg *message, cmd *command) error {
	if c.connected {
		return errors.New("rtmp: second connect")
	}
	obj := cmd.Object
	if obj == nil {
		return errors.New("rtmp: connect without command object")
	}
	c.app, _ = obj.GetString("app")
	tcURL, ok := obj.GetString("tcUrl")
	if !ok {
		tcURL, _ = obj.GetString("tcurl")
	}
	c.tcURL = trimQuotes(tcURL)
	c.connected = true
	c.log = c.log.With("app", c.app)
	flashVer, _ := obj.GetString("flashVer")
	c.log.Debug("rtmp connect", "tcUrl", c.tcURL, "flashVer", flashVer)

	cs := c.srv.chunkSize()
	if err := c.writeControl(msgWindowAckSize, be32(c.srv.windowAckSize())); err != nil {
		return err
	}
	if err := c.writeControl(msgSetPeerBandwidth, append(be32(c.srv.windowAckSize()), 2)); err != nil {
		return err
	}
	if err := c.writeControl(msgSetChunkSize, be32(cs)); err != nil {
		return err
	}
	c.w.SetChunkSize(cs)

	props := amf0.Object{
		{Key: "fmsVer", Value: "FMS/3,5,7,7009"},
		{Key: "capabilities", Value: 31.0},
		{Key: "mode", Value: 1.0},
	}
	if list, ok := obj.Get("fourCcList"); ok {
		if arr, ok := list.(amf0.StrictArray); ok {
			// Enhanced RTMP: we pass any codec through, so we support what the
			// client offers.
			props = append(props, amf0.ObjectEntry{Key: "fourCcList", Value: arr})
		}
	}
	info := amf0.Object{
		{Key: "level", Value: "status"},
		{Key: "code", Value: "NetConnection.Connect.Success"},
		{Key: "description", Value: "Connection succeeded."},
	}
	if enc, ok := obj.GetFloat64("objectEncoding"); ok {
		info = append(info, amf0.ObjectEntry{Key: "objectEncoding", Value: enc})
	} else {
		info = append(info, amf0.ObjectEntry{Key: "objectEncoding", Value: 0.0})
	}
	return c.writeCommand(msg.ChunkStreamID, 0, "_result", cmd.TxID, props, info)
}

func trimQuotes(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return s[1 : len(s)-1]
	}
	return s
}

func (c *conn) onPublish(msg *message, cmd *command) error {
	if c.published {
		return c.refusePublish(msg, "NetStream.Publish.Denied", "only one publish per connection")
	}
	name, _ := cmd.stringArg(0)
	publishType, _ := cmd.stringArg(1)
	req := newPublishRequest(c.app, c.tcURL, name, publishType, c.nc.RemoteAddr())
	log := c.log.With("stream", req.Stream, "domain", req.Domain)
	if req.Stream == "" {
		c.log = log
		return c.refusePublish(msg, "NetStream.Publish.BadName", "empty stream name")
	}
	if !c.streamCreated {
		log.Debug("rtmp publish before createStream")
	}

	req.releaseRead = c.lr.park
	sess, err := c.srv.Handler.Publish(req)
	if err == nil && sess == nil {
		err = errors.New("no session")
	}
	c.log = log
	if err != nil {
		code := "NetStream.Publish.Denied"
		if errors.Is(err, ErrBadName) {
			code = "NetStream.Publish.BadName"
		}
		return c.refusePublish(msg, code, err.Error())
	}

	c.published = true
	c.dc.until = time.Time{}
	c.srv.startBatching(c)
	c.r.SetTrusted(true)
	c.session = sess
	c.req = req
	c.publishStart = time.Now()
	// Argument values may be credentials: log the names only.
	argNames := make([]string, 0, len(req.Args))
	for k := range req.Args {
		argNames = append(argNames, k)
	}
	slices.Sort(argNames)
	c.log.Info("rtmp publish started", "args", argNames, "type", publishType)

	if err := c.writeUserControl(ucStreamBegin, streamID); err != nil {
		return err
	}
	return c.writeStatus(msg, "status", "NetStream.Publish.Start", req.Stream+" is now published.")
}

// refusePublish sends an error status and returns the refusal ending the connection.
func (c *conn) refusePublish(msg *message, code, description string) error {
	c.log.Warn("rtmp publish refused", "code", code, "reason", description)
	if err := c.writeStatus(msg, "error", code, description); err != nil {
		return err
	}
	return &refusal{"publish refused: " + description}
}

func (c *conn) refusePlay(msg *message) error {
	const desc = "playback is not supported by this server"
	c.log.Info("rtmp play refused")
	if err := c.writeStatus(msg, "error", "NetStream.Play.Failed", desc); err != nil {
		return err
	}
	return &refusal{"play refused"}
}

// sendAck is chunkReader's callback when an acknowledgement is due.
// sendAck is the chunk reader's callback when an acknowledgement is due. A publisher
// ahead of real time (a file pushed as fast as the network goes) gets it only once it
// goes quiet (ackQuiet without a byte: a client that waits for acknowledgements), or
// falls back to real time. Such a client (ffmpeg without -re) reads what we send only
// between its writes and closes the socket as soon as its last write returns; anything
// we sent that it did not read makes its kernel answer with a reset, which discards
// the seconds of media still queued in the sockets (tens of seconds of a fast push).
// A real-time publisher reads as it goes and is acknowledged at once.
func (c *conn) sendAck(count uint32) error {
	if c.ahead() {
		c.dc.quiet, c.dc.onQuiet = ackQuiet, c.releaseAck
		return nil
	}
	return c.writeControl(msgAcknowledgement, be32(count))
}

// ackQuiet is how long a publisher ahead of real time must send nothing before a
// held-back acknowledgement is sent.
const ackQuiet = 250 * time.Millisecond

// aheadSlack is how far ahead of real time a publisher may be (a GOP sent at once on
// connect) and still count as real time.
const aheadSlack = 3 * time.Second

// ahead reports whether the publish has delivered more media time than wall time.
func (c *conn) ahead() bool {
	if !c.haveTS {
		return false
	}
	media := time.Duration(c.lastTS-c.firstTS) * time.Millisecond
	return media > time.Since(c.publishStart)+aheadSlack
}

// ackHeld reports whether an acknowledgement is held back: the reads wait for the
// publisher to go quiet.
func (c *conn) ackHeld() bool { return c.dc.onQuiet != nil }

// releaseAck sends a held-back acknowledgement of everything read so far.
func (c *conn) releaseAck() error {
	if !c.ackHeld() {
		return nil
	}
	c.dc.quiet, c.dc.onQuiet = 0, nil
	return c.writeControl(msgAcknowledgement, be32(uint32(c.bc.Reader.Count())))
}

func be32(v uint32) []byte {
	return binary.BigEndian.AppendUint32(make([]byte, 0, 5), v)
}

func (c *conn) writeControl(typ uint8, body []byte) error {
	return c.w.Write(&rawmessage.Message{ChunkStreamID: controlChunkStream, Type: typ, Body: body})
}

func (c *conn) writeUserControl(event uint16, v uint32) error {
	b := make([]byte, 6)
	binary.BigEndian.PutUint16(b, event)
	binary.BigEndian.PutUint32(b[2:], v)
	return c.writeControl(msgUserControl, b)
}

// writeCommand sends an AMF0 command message on chunk stream csid (3 if rawmessage.Writer
// cannot write csid) and message stream msid.
func (c *conn) writeCommand(csid, msid uint32, vals ...any) error {
	body, err := amf0.Data(vals).Marshal()
	if err != nil {
		return err
	}
	if csid < 2 || csid > 63 {
		csid = 3
	}
	// rawmessage.Writer writes the message stream id big-endian although the wire
	// format is little-endian: give it the id byte-swapped.
	return c.w.Write(&rawmessage.Message{
		ChunkStreamID: byte(csid), Type: msgCommandAMF0, MessageStreamID: bits.ReverseBytes32(msid), Body: body,
	})
}

// writeResult answers a call on the chunk and message stream it came on. Calls with
// transaction id 0 expect no answer.
func (c *conn) writeResult(msg *message, txID float64, vals ...any) error {
	if txID == 0 {
		return nil
	}
	return c.writeCommand(msg.ChunkStreamID, msg.StreamID, append([]any{"_result", txID}, vals...)...)
}

// writeStatus sends onStatus on the message stream of the triggering command (our stream
// if that was 0, as for a publish before createStream).
func (c *conn) writeStatus(msg *message, level, code, description string) error {
	msid := msg.StreamID
	if msid == 0 {
		msid = streamID
	}
	return c.writeCommand(statusChunkStream, msid, "onStatus", 0.0, nil, amf0.Object{
		{Key: "level", Value: level},
		{Key: "code", Value: code},
		{Key: "description", Value: description},
	})
}

// deadlineConn refreshes the read (write) deadline before every read (write), so that
// a connection fails after ReadTimeout without a byte received (WriteTimeout without a
// byte accepted), whatever the message sizes. The read deadline is re-armed only when it
// would otherwise fall short of ReadTimeout, and then ReadTimeout/8 further out: a
// publish reads tens of times a second, and moving the runtime's timer on every read
// cost more than the rest of the deadline handling. A silent connection thus fails
// between ReadTimeout and 9/8 of it after its last byte.
//
// Until a publish is accepted, reads also stop at until (PublishDeadline after the
// connection was accepted): a client that trickles its handshake or commands, or never
// publishes, cannot hold the connection longer.
//
// While quiet is set, every read waits at most quiet; if nothing arrives by then,
// onQuiet is called (on the reading goroutine) and the read goes on with the usual
// deadline. Reads stop at a passed deadline even with data queued, so the short
// deadline is set before each such read.
type deadlineConn struct {
	net.Conn
	quiet         time.Duration
	onQuiet       func() error
	rt, wt        time.Duration
	pt            time.Duration // the publish deadline that until was computed with
	until         time.Time     // zero once a publish was accepted
	armed         time.Time     // the read deadline set last
	batch         *batch        // set once a publish is accepted (see batch); nil: none
	writeTimedOut atomic.Bool

	// Lent reads (ReadLent): the socket (nil: not TCP), its readiness callback, and the
	// state of the read in progress.
	raw        syscall.RawConn
	onReadable func(fd uintptr) bool
	lend       func() []byte
	unlend     func()
	rn         int
	rerr       error
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.quiet > 0 {
		if err := d.Conn.SetReadDeadline(time.Now().Add(d.quiet)); err != nil {
			return 0, err
		}
		d.armed = time.Time{}
		n, err := d.read(p)
		var ne net.Error
		if n > 0 || err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			return n, err
		}
		if err := d.onQuiet(); err != nil {
			return 0, err
		}
	}
	if want := time.Now().Add(d.rt); d.armed.Before(want) {
		dl := want.Add(d.rt / 8)
		if !d.until.IsZero() && d.until.Before(dl) {
			dl = d.until
		}
		if !dl.Equal(d.armed) {
			if err := d.Conn.SetReadDeadline(dl); err != nil {
				return 0, err
			}
			d.armed = dl
		}
	}
	return d.read(p)
}

// read reads from the connection (into p, or in a lent read into the lent buffer) and
// accounts the bytes for read batching.
func (d *deadlineConn) read(p []byte) (n int, err error) {
	if d.lend != nil {
		n, err = d.readRaw()
	} else {
		n, err = d.Conn.Read(p)
	}
	if d.batch != nil {
		d.batch.onRead(n, time.Now())
	}
	return n, err
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if err := d.Conn.SetWriteDeadline(time.Now().Add(d.wt)); err != nil {
		return 0, err
	}
	n, err := d.Conn.Write(p)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			d.writeTimedOut.Store(true)
		}
	}
	return n, err
}
