package rtmp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bluenviron/gortmplib/pkg/amf0"
)

func TestParseCommand(t *testing.T) {
	body := amfBytes(t, "publish", 5.0, nil, "key?x=1", "live")
	cmd, err := parseCommand(body)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Name != "publish" || cmd.TxID != 5 || cmd.Object != nil || len(cmd.Args) != 2 {
		t.Fatalf("%+v", cmd)
	}
	if s, ok := cmd.stringArg(0); !ok || s != "key?x=1" {
		t.Errorf("arg 0 %q", s)
	}
	if _, ok := cmd.stringArg(2); ok {
		t.Error("arg 2 exists")
	}

	// Command object as ECMA array; a client leaving out the command object.
	cmd, err = parseCommand(amfBytes(t, "connect", 1.0, amf0.ECMAArray{{Key: "app", Value: "live"}}))
	if err != nil || cmd.Object == nil {
		t.Fatalf("%+v %v", cmd, err)
	}
	if app, _ := cmd.Object.GetString("app"); app != "live" {
		t.Errorf("app %q", app)
	}
	cmd, err = parseCommand(amfBytes(t, "publish", 0.0, "name"))
	if err != nil || len(cmd.Args) != 1 {
		t.Fatalf("%+v %v", cmd, err)
	}
	cmd, err = parseCommand(amfBytes(t, "onBWDone"))
	if err != nil || cmd.TxID != 0 {
		t.Fatalf("%+v %v", cmd, err)
	}

	for name, bad := range map[string][]byte{
		"empty":        {},
		"name number":  amfBytes(t, 1.0, 2.0),
		"txid string":  amfBytes(t, "connect", "1"),
		"truncated":    amfBytes(t, "connect", 1.0)[:12],
		"amf3":         append(amfBytes(t, "connect", 1.0), 0x11, 0x0A),
		"bad marker":   append(amfBytes(t, "connect", 1.0), 0x04),
		"stray end":    append(amfBytes(t, "connect", 1.0), 0x09),
		"no obj end":   {0x02, 0, 1, 'c', 0x03, 0, 1, 'k', 0x05, 0, 0, 0x05},
		"array count":  {0x02, 0, 1, 'c', 0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05},
		"long string":  {0x02, 0, 1, 'c', 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 'x'},
		"short number": {0x02, 0, 1, 'c', 0x00, 1, 2},
	} {
		if _, err := parseCommand(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDecodeAMF0Types(t *testing.T) {
	var b []byte
	b = append(b, 0x0B, 0x42, 0x77, 0, 0, 0, 0, 0, 0, 0, 0) // date
	b = append(b, 0x0C, 0, 0, 0, 2, 'h', 'i')               // long string
	b = append(b, 0x10, 0, 1, 'C', 0, 1, 'a', 0x01, 1, 0, 0, 0x09)
	b = append(b, 0x07, 0, 3) // reference
	b = append(b, 0x0D, 0x06) // unsupported, undefined
	b = append(b, 0x0F, 0, 0, 0, 1, '<')
	vals, err := decodeAMF0(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{nil /* date: checked by type below */, "hi", amf0.Object{{Key: "a", Value: true}}, amf0.Undefined{}, amf0.Undefined{}, amf0.Undefined{}, "<"}
	if len(vals) != len(want) {
		t.Fatalf("%d values: %#v", len(vals), vals)
	}
	if _, ok := vals[0].(float64); !ok {
		t.Errorf("date decoded as %T", vals[0])
	}
	for i := 1; i < len(want); i++ {
		got, _ := amf0.Data{vals[i]}.Marshal()
		exp, _ := amf0.Data{want[i]}.Marshal()
		if !bytes.Equal(got, exp) {
			t.Errorf("value %d: %#v, want %#v", i, vals[i], want[i])
		}
	}
}

func TestDecodeAMF0Depth(t *testing.T) {
	nest := func(depth int) []byte {
		var b []byte
		for range depth {
			b = append(b, 0x0A, 0, 0, 0, 1) // strict array of one element
		}
		b = append(b, 0x05)
		return b
	}
	if _, err := decodeAMF0(nest(amfMaxDepth)); err != nil {
		t.Errorf("depth %d: %v", amfMaxDepth, err)
	}
	if _, err := decodeAMF0(nest(amfMaxDepth + 1)); !errors.Is(err, errAMFDepth) {
		t.Errorf("depth %d: %v", amfMaxDepth+1, err)
	}
	// A million nested objects: an error, not a stack overflow.
	deep := bytes.Repeat([]byte{0x03, 0, 1, 'k'}, 1_000_000)
	if _, err := decodeAMF0(deep); !errors.Is(err, errAMFDepth) {
		t.Errorf("deep objects: %v", err)
	}
}

func TestHasAMF0StringPrefix(t *testing.T) {
	b := amfBytes(t, "@setDataFrame", "onMetaData")
	if !hasAMF0StringPrefix(b, "@setDataFrame") || hasAMF0StringPrefix(b, "@setDataFram") ||
		hasAMF0StringPrefix(b, "onMetaData") || hasAMF0StringPrefix(b[:5], "@setDataFrame") {
		t.Error("hasAMF0StringPrefix")
	}
}

// reencode marshals a parsed command back to AMF0.
func reencode(t *testing.T, c command) []byte {
	vals := []any{c.Name, c.TxID}
	if c.Object != nil {
		vals = append(vals, c.Object)
	} else {
		vals = append(vals, nil)
	}
	vals = append(vals, c.Args...)
	b, err := amf0.Data(vals).Marshal()
	if err != nil {
		t.Fatalf("marshal of decoded command: %v", err)
	}
	return b
}

func FuzzCommand(f *testing.F) {
	f.Add(amfBytes(f, "connect", 1.0, amf0.Object{
		{Key: "app", Value: "live"}, {Key: "tcUrl", Value: "rtmp://h/live"},
		{Key: "fourCcList", Value: amf0.StrictArray{"hvc1", "av01", "vp09"}},
		{Key: "objectEncoding", Value: 0.0},
	}))
	f.Add(amfBytes(f, "publish", 5.0, nil, "key?vhost=a", "live"))
	f.Add(amfBytes(f, "createStream", 4.0, nil))
	f.Add(amfBytes(f, "deleteStream", 0.0, nil, 1.0))
	f.Add(amfBytes(f, "x", 1.0, amf0.ECMAArray{{Key: "a", Value: amf0.Object{{Key: "b", Value: amf0.StrictArray{1.0, false, amf0.Undefined{}}}}}}))
	f.Add([]byte{0x02, 0, 1, 'c', 0x0B, 0x42, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0, 0, 0, 1, 'x', 0x10, 0, 1, 'C', 0, 0, 0x09})
	f.Add(bytes.Repeat([]byte{0x03, 0, 1, 'k'}, 40))
	f.Fuzz(func(t *testing.T, body []byte) {
		// Differential check: whatever gortmplib's decoder accepts, ours accepts too
		// (unless too deeply nested) with the same meaning.
		if theirs, err := amf0.Unmarshal(body); err == nil {
			ours, err := decodeAMF0(body)
			if err != nil && !errors.Is(err, errAMFDepth) {
				t.Fatalf("gortmplib decodes, we fail: %v", err)
			}
			if err == nil {
				a, _ := amf0.Data(ours).Marshal()
				b, _ := theirs.Marshal()
				if !bytes.Equal(a, b) {
					t.Fatalf("decoders disagree:\n ours %x\ntheirs %x", a, b)
				}
			}
		}

		cmd, err := parseCommand(body)
		if err != nil {
			return
		}
		// Decoding is stable: re-encoding what we decoded decodes to the same thing.
		enc := reencode(t, cmd)
		cmd2, err := parseCommand(enc)
		if err != nil {
			t.Fatalf("re-encoded command does not parse: %v", err)
		}
		if cmd2.Name != cmd.Name {
			t.Fatalf("name %q became %q", cmd.Name, cmd2.Name)
		}
		if enc2 := reencode(t, cmd2); !bytes.Equal(enc, enc2) {
			t.Fatalf("unstable round trip:\n%x\n%x", enc, enc2)
		}
	})
}
