package flvfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// ---------------------------------------------------------------------------------------
// The onMetaData reservation: the working file is the final file.

// Sizing of the reservation (see the package documentation).
var (
	// reserveInterval is the keyframe interval the reservation is sized for: a file whose
	// keyframes are at least this far apart, and no longer than Config.MaxDuration, gets
	// its whole keyframes index in place.
	reserveInterval = time.Second
	// minReservedKeyframes and maxReservedKeyframes bound the index entries reserved
	// (18 bytes each). The upper bound keeps the reservation, and so the padding of short
	// files, under 64 KiB: an hour of one-second GOPs.
	minReservedKeyframes = 16
	maxReservedKeyframes = 3600
)

// reservedKeyframes is the number of keyframes the reservation holds for a file of at most
// maxDur (0: unknown); the file ends at the keyframe after the cycle, hence the slack.
func reservedKeyframes(maxDur time.Duration) int {
	if maxDur <= 0 {
		return maxReservedKeyframes
	}
	n := int((maxDur+reserveInterval-1)/reserveInterval) + 8
	return min(max(n, minReservedKeyframes), maxReservedKeyframes)
}

// reserveSize is the body size of the script tag reserved for onMetaData: the size of the
// metadata of a file with these tracks and kf keyframes (AMF0 numbers are fixed-size, so
// it depends on nothing else).
func reserveSize(m *fileMeta, kf int) (int, error) {
	x := &index{firstVideo: -1}
	if m.VideoCodec != "" {
		x.kfTimes, x.kfPos = make([]int64, kf), make([]int64, kf)
		x.count[kindVideo] = 1
	}
	body, err := metadataBody(m, x, 1, 0, 0)
	if err != nil {
		return 0, err
	}
	return len(body), nil
}

// placeholderBody is what the reservation holds while recording: onMetaData with an empty
// array, then padding. Only its first bytes are written (reserveHead); the rest of the
// padding is zeros, left as a hole in the working file.
func placeholderBody(reserve int) ([]byte, error) {
	b, err := amf0.Data{"onMetaData", amf0.ECMAArray{}}.Marshal()
	if err != nil {
		return nil, err
	}
	if len(b)+3 > reserve {
		return nil, fmt.Errorf("flvfile: reservation of %d bytes too small", reserve)
	}
	return appendPadding(b, reserve-len(b)), nil
}

// appendPadding appends n bytes of AMF0 values after the metadata: strings of zeros (up
// to 65535 bytes each, 3 bytes of header), and nulls for a remainder below 3 bytes. The
// body stays a sequence of complete AMF0 values for readers that decode all of them;
// ffmpeg and players read the name and the array and skip to the next tag.
func appendPadding(b []byte, n int) []byte {
	for n >= 3 {
		c := min(n-3, 65535)
		b = append(b, 0x02, byte(c>>8), byte(c))
		b = append(b, make([]byte, c)...)
		n -= 3 + c
	}
	for range n {
		b = append(b, 0x05)
	}
	return b
}

// reservedLayout encodes the metadata for a working file that becomes the final file in
// place: the tags stay where they are, so the keyframe positions are their working-file
// offsets, and the file ends after the last tag's PreviousTagSize. If the index does not
// fit the reservation it is thinned to every step-th keyframe (step > 1), or left out
// (step 0) if fewer than two entries would fit.
func reservedLayout(m *fileMeta, x *index, reserve int) (body []byte, step int, err error) {
	fileSize := x.end + 4
	step = 1
	body, err = metadataBody(m, x, step, 0, fileSize)
	if err != nil || len(body) <= reserve {
		return body, step, err
	}
	n := len(x.kfTimes)
	base := len(body) - 18*n // without index entries
	fit := (reserve - base) / 18
	if fit >= 2 {
		step = (n + fit - 1) / fit
	} else {
		step = 0
	}
	for {
		body, err = metadataBody(m, x, step, 0, fileSize)
		if err != nil || len(body) <= reserve {
			return body, step, err
		}
		if step == 0 {
			return nil, 0, fmt.Errorf("flvfile: onMetaData of %d bytes does not fit its %d-byte reservation", len(body), reserve)
		}
		if step++; (n+step-1)/step < 2 {
			step = 0
		}
	}
}

// reserveOffset is where the reserved script tag's body starts in the working file: after
// the FLV header, the first PreviousTagSize and the tag header.
const reserveOffset = dataOffset + 4 + 11

// writeReserved writes the final onMetaData (padded to the reservation) into the working
// file at path, cuts off anything after the last complete tag (a torn tail), and fsyncs
// the file unless noSync. Only the bytes that differ from what is there are written, so the padding
// stays a hole and a repeated call writes nothing.
func writeReserved(path string, body []byte, reserve int, fileSize int64, noSync bool) error {
	if len(body) > reserve {
		return errors.New("flvfile: onMetaData exceeds its reservation")
	}
	want := appendPadding(body, reserve-len(body))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		return err
	}
	have := make([]byte, reserve)
	if _, err := f.ReadAt(have, reserveOffset); err != nil && !errors.Is(err, io.EOF) {
		return fail(err)
	}
	if !bytes.Equal(have, want) {
		lo := 0
		for have[lo] == want[lo] {
			lo++
		}
		hi := reserve
		for have[hi-1] == want[hi-1] {
			hi--
		}
		if _, err := f.WriteAt(want[lo:hi], reserveOffset+int64(lo)); err != nil {
			return fail(err)
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	switch {
	case fi.Size() > fileSize:
		if err := f.Truncate(fileSize); err != nil {
			return fail(err)
		}
	case fi.Size() < fileSize:
		return fail(fmt.Errorf("flvfile: working file is %d bytes, expected at least %d (changed?)", fi.Size(), fileSize))
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	return f.Close()
}
