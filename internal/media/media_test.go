package media

import (
	"bytes"
	"reflect"
	"testing"
)

func TestSameParams(t *testing.T) {
	base := func() *Track {
		return &Track{Codec: H264, VPS: []byte{1}, SPS: []byte{2, 3}, PPS: []byte{4}, VideoConfig: []byte{5},
			Width: 1280, Height: 720, FrameRate: 30, AudioConfig: []byte{0x12, 0x10}, SampleRate: 44100, Channels: 2}
	}
	var none *Track
	if !none.SameParams(nil) {
		t.Error("nil vs nil: want true")
	}
	if none.SameParams(base()) || base().SameParams(nil) {
		t.Error("nil vs a track: want false")
	}
	a := base()
	if !a.SameParams(a) || !a.SameParams(base()) {
		t.Error("equal parameters in another *Track: want true")
	}
	// Nil and empty byte slices are the same parameter (absent).
	b := base()
	a.VPS, b.VPS = nil, []byte{}
	if !a.SameParams(b) {
		t.Error("nil vs empty VPS: want true")
	}

	// Every field but FrameRate is a parameter: changing it is a track change. Going over
	// the struct's fields makes a new field fail here until the rule decides on it.
	typ := reflect.TypeOf(Track{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		c := base()
		v := reflect.ValueOf(c).Elem().Field(i)
		switch f.Type.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int:
			v.SetInt(v.Int() + 1)
		case reflect.Float64:
			v.SetFloat(v.Float() + 1)
		case reflect.Slice:
			v.SetBytes(append(bytes.Clone(v.Bytes()), 0xff))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", f.Name, f.Type.Kind())
		}
		want := f.Name == "FrameRate"
		if got := base().SameParams(c); got != want {
			t.Errorf("%s changed: SameParams = %v, want %v", f.Name, got, want)
		}
		if got := c.SameParams(base()); got != want {
			t.Errorf("%s changed (reversed): SameParams = %v, want %v", f.Name, got, want)
		}
	}
}
