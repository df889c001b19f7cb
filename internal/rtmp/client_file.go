package rtmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/livrec/livrec/internal/flv"
)

// TagReader yields FLV tags; *flv.Reader implements it. ReadTag returns io.EOF at the end;
// the returned body need only stay valid until the next call.
type TagReader interface {
	ReadTag() (flv.Tag, error)
}

// PublishStats summarises what WriteAll or PublishFile sent.
type PublishStats struct {
	Tags  int   // tags sent
	Bytes int64 // tag body bytes sent
	// MediaDuration is the span from the first tag's timestamp to the latest one.
	MediaDuration time.Duration
}

// WriteAll sends every tag of src until io.EOF. With realtime, each tag is held back until
// its timestamp (relative to the first tag's) has elapsed since the first tag was sent;
// tags whose timestamp is not ahead of the first one's, or already due, go at once.
// Without realtime, tags are sent as fast as the connection takes them. It returns when
// src is exhausted, on the first read or write error, or when ctx is done (ctx.Err()).
// WriteAll itself allocates nothing per tag.
func (p *Publisher) WriteAll(ctx context.Context, src TagReader, realtime bool) (PublishStats, error) {
	var st PublishStats
	var pc pacer
	defer pc.stop()
	var first uint32
	var maxOff int32
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		t, err := src.ReadTag()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("rtmp: reading tags: %w", err)
		}
		if st.Tags == 0 {
			first = t.Timestamp
		} else if off := int32(t.Timestamp - first); off > maxOff {
			maxOff = off
			st.MediaDuration = time.Duration(off) * time.Millisecond
		}
		if realtime {
			if err := pc.wait(ctx, t.Timestamp); err != nil {
				return st, err
			}
		}
		if err := p.WriteTag(t); err != nil {
			return st, err
		}
		st.Tags++
		st.Bytes += int64(len(t.Body))
	}
}

// pacer releases tags at the pace of their timestamps.
type pacer struct {
	started bool
	start   time.Time
	first   uint32
	timer   *time.Timer
}

func (pc *pacer) wait(ctx context.Context, ts uint32) error {
	if !pc.started {
		pc.started, pc.start, pc.first = true, time.Now(), ts
		return nil
	}
	off := int32(ts - pc.first) // wraps correctly across the 32-bit timestamp boundary
	if off <= 0 {
		return nil
	}
	d := time.Until(pc.start.Add(time.Duration(off) * time.Millisecond))
	if d <= 0 {
		return nil
	}
	if pc.timer == nil {
		pc.timer = time.NewTimer(d)
	} else {
		pc.timer.Reset(d)
	}
	select {
	case <-pc.timer.C:
		return nil
	case <-ctx.Done():
		pc.timer.Stop()
		return ctx.Err()
	}
}

func (pc *pacer) stop() {
	if pc.timer != nil {
		pc.timer.Stop()
	}
}

// PublishFile publishes the FLV file at path to rawURL (see Publish), optionally in real
// time (see WriteAll), and closes the publish gracefully. The error is the first of:
// opening or negotiating, sending (or ctx ending the push early), closing.
func PublishFile(ctx context.Context, rawURL, path string, realtime bool, opt PublishOptions) (PublishStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return PublishStats{}, err
	}
	defer f.Close()
	r, err := flv.NewReader(f)
	if err != nil {
		return PublishStats{}, fmt.Errorf("%s: %w", path, err)
	}
	p, err := Publish(ctx, rawURL, opt)
	if err != nil {
		return PublishStats{}, err
	}
	st, err := p.WriteAll(ctx, r, realtime)
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err == nil && r.Truncated() {
		err = fmt.Errorf("%s: truncated FLV file (the complete tags were sent)", path)
	}
	return st, err
}
