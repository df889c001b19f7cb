package rtmp

import (
	"fmt"
	"io"
	"time"

	"github.com/livrec/livrec/internal/flv"
)

// WriteTags sends several FLV tags like WriteTag, in order, with a single flush (one
// write system call for as many tags as fit the 32 KiB buffer) instead of one per tag:
// a load generator pacing thousands of streams sends each stream's due tags in one
// batch. It stops at the first error and returns the number of tags it wrote into the
// connection's buffer before it (all of them when the error is nil). It does not
// allocate.
func (p *Publisher) WriteTags(tags []flv.Tag) (int, error) {
	for i := range tags {
		switch tags[i].Type {
		case flv.TagAudio, flv.TagVideo, flv.TagScript:
		default:
			return 0, fmt.Errorf("rtmp: cannot publish tag type %d", tags[i].Type)
		}
	}
	p.wmu.Lock()
	if p.closed {
		p.wmu.Unlock()
		return 0, ErrPublisherClosed
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
		return 0, err
	}
	p.nc.SetWriteDeadline(time.Now().Add(p.timeout))
	p.flushControlLocked()
	n := 0
	var err error
	for i := range tags {
		t := &tags[i]
		var csid byte
		var prefix []byte
		switch t.Type {
		case flv.TagAudio:
			csid = clientAudioChunkStream
		case flv.TagVideo:
			csid = clientVideoChunkStream
		default:
			csid = clientStreamChunkStream
			if hasAMF0StringPrefix(t.Body, "onMetaData") {
				prefix = setDataFrame
			}
		}
		if err = p.writeMsgLocked(csid, t.Type, p.msid, t.Timestamp, prefix, t.Body); err != nil {
			break
		}
		n++
	}
	if ferr := p.flushLocked(); err == nil {
		err = ferr
	}
	p.wmu.Unlock()
	p.writeTail()
	return n, err
}
