package transcode

import (
	"slices"
	"testing"

	"github.com/livrec/livrec/internal/rules"
)

func TestBuiltinsMatchRules(t *testing.T) {
	for _, id := range rules.BuiltinTemplates {
		b, ok := Builtin[id]
		if !ok {
			t.Fatalf("no built-in %s", id)
		}
		b.ID = "x" + id // a custom copy must validate
		b.Normalize()
		if err := b.Validate(); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if len(Builtin) != len(rules.BuiltinTemplates) {
		t.Fatal("Builtin and rules.BuiltinTemplates differ")
	}
}

func TestTemplateValidation(t *testing.T) {
	ok := Template{ID: "my_540-p", Height: 540, VideoBitrate: 900}
	for _, c := range []struct {
		mod   func(*Template)
		field string
	}{
		{func(t *Template) { t.ID = "" }, "[0].id"},
		{func(t *Template) { t.ID = "a.b" }, "[0].id"},
		{func(t *Template) { t.ID = "lsd" }, "[0].id"},
		{func(t *Template) { t.Codec = "vp9" }, "[0].codec"},
		{func(t *Template) { t.Height = 0 }, "[0].height"},
		{func(t *Template) { t.Height = 541 }, "[0].height"},
		{func(t *Template) { t.Height = 98 }, "[0].height"},
		{func(t *Template) { t.Width = 2562 }, "[0].width"},
		{func(t *Template) { t.Width, t.Height = 2560, 1920 }, "[0].height"},
		{func(t *Template) { t.FPS = 61 }, "[0].fps"},
		{func(t *Template) { t.VideoBitrate = 6001 }, "[0].videoBitrate"},
		{func(t *Template) { t.GOP = 21 }, "[0].gop"},
		{func(t *Template) { t.Profile = "extreme" }, "[0].profile"},
		{func(t *Template) { t.AudioCodec = "opus" }, "[0].audioCodec"},
		{func(t *Template) { t.AudioCodec, t.AudioBitrate = "copy", 64 }, "[0].audioBitrate"},
		{func(t *Template) { t.AudioBitrate = 1001 }, "[0].audioBitrate"},
	} {
		tt := ok
		c.mod(&tt)
		_, err := NewLibrary([]Template{tt})
		es, _ := err.(rules.ValidationErrors)
		if !slices.ContainsFunc(es, func(e *rules.ValidationError) bool { return e.Field == c.field }) {
			t.Errorf("%+v: want an error on %s, got %v", tt, c.field, err)
		}
	}
	if _, err := NewLibrary([]Template{ok, ok}); err == nil {
		t.Error("duplicate id accepted")
	}
	l, err := NewLibrary([]Template{ok, {AppName: "live", ID: "my_540-p", Height: 360, VideoBitrate: 400}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Lookup("a.com", "live", "my_540-p"); got.Height != 360 {
		t.Errorf("app-specific template not preferred: %+v", got)
	}
	if got, _ := l.Lookup("a.com", "other", "my_540-p"); got.Height != 540 || got.AudioBitrate != DefaultAudioBitrate || got.GOP != DefaultGOP {
		t.Errorf("catch-all template: %+v", got)
	}
	ts, missing := l.Resolve("a.com", "x", []string{"all"})
	if len(ts) != 4 || missing != nil {
		t.Errorf("all: %v %v", ts, missing)
	}
	if _, missing := l.Resolve("a.com", "x", []string{"lld", "nope"}); !slices.Equal(missing, []string{"nope"}) {
		t.Errorf("missing %v", missing)
	}
}

func TestSize(t *testing.T) {
	for _, c := range []struct{ tw, th, sw, sh, w, h int }{
		{0, 360, 1280, 720, 640, 360},
		{0, 540, 1280, 720, 960, 540},
		{0, 432, 1280, 720, 768, 432},
		{0, 360, 1000, 750, 480, 360},
		{0, 360, 1366, 768, 640, 360},
		{640, 0, 1280, 720, 640, 360},
		{320, 200, 1280, 720, 320, 200},
	} {
		tpl := Template{Width: c.tw, Height: c.th}
		if w, h := tpl.Size(c.sw, c.sh); w != c.w || h != c.h || w%2 != 0 {
			t.Errorf("%dx%d from %dx%d: got %dx%d, want %dx%d", c.tw, c.th, c.sw, c.sh, w, h, c.w, c.h)
		}
	}
}
