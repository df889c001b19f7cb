package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

// AMF0 markers.
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfMovieClip   = 0x04
	amfNull        = 0x05
	amfUndefined   = 0x06
	amfReference   = 0x07
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0A
	amfDate        = 0x0B
	amfLongString  = 0x0C
	amfUnsupported = 0x0D
	amfRecordSet   = 0x0E
	amfXMLDocument = 0x0F
	amfTypedObject = 0x10
	amfAVMPlus     = 0x11
)

// amfMaxDepth bounds the nesting of objects and arrays in a decoded command.
const amfMaxDepth = 32

var (
	errAMFShort = errors.New("amf0: truncated value")
	errAMFDepth = errors.New("amf0: values nested too deeply")
)

// decodeAMF0 decodes all the AMF0 values in buf into gortmplib's amf0 types, so that they
// can be re-encoded by amf0.Data.Marshal: float64, bool, string, nil, amf0.Undefined,
// amf0.Object, amf0.ECMAArray and amf0.StrictArray. Dates become their float64 time in
// milliseconds, long strings and XML documents strings, typed objects plain objects,
// and references and "unsupported" values amf0.Undefined. AMF3 values are an error.
func decodeAMF0(buf []byte) ([]any, error) {
	var out []any
	for len(buf) > 0 {
		v, rest, err := decodeAMF0Value(buf, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		buf = rest
	}
	return out, nil
}

func decodeAMF0Value(buf []byte, depth int) (any, []byte, error) {
	if len(buf) < 1 {
		return nil, nil, errAMFShort
	}
	marker, buf := buf[0], buf[1:]
	switch marker {
	case amfNumber:
		if len(buf) < 8 {
			return nil, nil, errAMFShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(buf)), buf[8:], nil

	case amfBoolean:
		if len(buf) < 1 {
			return nil, nil, errAMFShort
		}
		return buf[0] != 0, buf[1:], nil

	case amfString:
		return decodeShortString(buf)

	case amfLongString, amfXMLDocument:
		if len(buf) < 4 {
			return nil, nil, errAMFShort
		}
		n := binary.BigEndian.Uint32(buf)
		buf = buf[4:]
		if uint64(len(buf)) < uint64(n) {
			return nil, nil, errAMFShort
		}
		return string(buf[:n]), buf[n:], nil

	case amfObject:
		if depth >= amfMaxDepth {
			return nil, nil, errAMFDepth
		}
		o, rest, err := decodeProperties(buf, depth+1)
		return o, rest, err

	case amfTypedObject:
		if depth >= amfMaxDepth {
			return nil, nil, errAMFDepth
		}
		_, buf, err := decodeShortString(buf) // class name
		if err != nil {
			return nil, nil, err
		}
		o, rest, err := decodeProperties(buf, depth+1)
		return o, rest, err

	case amfECMAArray:
		if depth >= amfMaxDepth {
			return nil, nil, errAMFDepth
		}
		if len(buf) < 4 {
			return nil, nil, errAMFShort
		}
		// The count is only a hint; the properties end with the object-end marker.
		o, rest, err := decodeProperties(buf[4:], depth+1)
		return amf0.ECMAArray(o), rest, err

	case amfStrictArray:
		if depth >= amfMaxDepth {
			return nil, nil, errAMFDepth
		}
		if len(buf) < 4 {
			return nil, nil, errAMFShort
		}
		n := binary.BigEndian.Uint32(buf)
		buf = buf[4:]
		if uint64(n) > uint64(len(buf)) { // every value takes at least one byte
			return nil, nil, errAMFShort
		}
		arr := make(amf0.StrictArray, 0, n)
		for range n {
			var v any
			var err error
			v, buf, err = decodeAMF0Value(buf, depth+1)
			if err != nil {
				return nil, nil, err
			}
			arr = append(arr, v)
		}
		return arr, buf, nil

	case amfNull:
		return nil, buf, nil

	case amfUndefined, amfUnsupported:
		return amf0.Undefined{}, buf, nil

	case amfReference:
		if len(buf) < 2 {
			return nil, nil, errAMFShort
		}
		return amf0.Undefined{}, buf[2:], nil

	case amfDate:
		if len(buf) < 10 { // float64 milliseconds + int16 time zone
			return nil, nil, errAMFShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(buf)), buf[10:], nil

	case amfAVMPlus:
		return nil, nil, errors.New("amf0: AMF3 values are not supported")

	default: // movie clip, record set (reserved), object end out of place, unknown
		return nil, nil, fmt.Errorf("amf0: unexpected marker 0x%02x", marker)
	}
}

func decodeShortString(buf []byte) (string, []byte, error) {
	if len(buf) < 2 {
		return "", nil, errAMFShort
	}
	n := int(binary.BigEndian.Uint16(buf))
	buf = buf[2:]
	if len(buf) < n {
		return "", nil, errAMFShort
	}
	return string(buf[:n]), buf[n:], nil
}

// decodeProperties decodes key/value pairs up to and including the empty key followed
// by the object-end marker.
func decodeProperties(buf []byte, depth int) (amf0.Object, []byte, error) {
	o := amf0.Object{}
	for {
		key, rest, err := decodeShortString(buf)
		if err != nil {
			return nil, nil, err
		}
		buf = rest
		if key == "" {
			if len(buf) < 1 {
				return nil, nil, errAMFShort
			}
			if buf[0] != amfObjectEnd {
				return nil, nil, errors.New("amf0: object end marker missing")
			}
			return o, buf[1:], nil
		}
		var v any
		v, buf, err = decodeAMF0Value(buf, depth)
		if err != nil {
			return nil, nil, err
		}
		o = append(o, amf0.ObjectEntry{Key: key, Value: v})
	}
}

// command is a decoded RTMP command message: name, transaction id, command object and
// the optional arguments that follow it.
type command struct {
	Name string
	TxID float64
	// Object is the command object (nil when it is AMF null/undefined or absent).
	Object amf0.Object
	// Args are the values after the command object.
	Args []any
}

// parseCommand decodes the body of an AMF0 command message. It is lenient about what
// follows the name: a missing transaction id counts as 0, and a non-object third value
// is taken as the first argument of a client that left out the command object.
func parseCommand(body []byte) (command, error) {
	vals, err := decodeAMF0(body)
	if err != nil {
		return command{}, err
	}
	if len(vals) == 0 {
		return command{}, errors.New("empty command")
	}
	var cmd command
	var ok bool
	if cmd.Name, ok = vals[0].(string); !ok {
		return command{}, fmt.Errorf("command name is %T, not a string", vals[0])
	}
	if len(vals) > 1 {
		if cmd.TxID, ok = vals[1].(float64); !ok {
			return command{}, fmt.Errorf("transaction id of %q is %T, not a number", cmd.Name, vals[1])
		}
	}
	if len(vals) > 2 {
		rest := vals[2:]
		switch o := rest[0].(type) {
		case amf0.Object:
			cmd.Object, rest = o, rest[1:]
		case amf0.ECMAArray:
			cmd.Object, rest = amf0.Object(o), rest[1:]
		case nil, amf0.Undefined:
			rest = rest[1:]
		}
		cmd.Args = rest
	}
	return cmd, nil
}

// stringArg returns the i-th argument if it is a string.
func (c *command) stringArg(i int) (string, bool) {
	if i >= len(c.Args) {
		return "", false
	}
	s, ok := c.Args[i].(string)
	return s, ok
}

// hasAMF0StringPrefix reports whether body starts with the AMF0 encoding of s.
func hasAMF0StringPrefix(body []byte, s string) bool {
	return len(body) >= 3+len(s) && body[0] == amfString &&
		int(binary.BigEndian.Uint16(body[1:])) == len(s) && string(body[3:3+len(s)]) == s
}
