package record

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/rtmp"
	"github.com/livrec/livrec/internal/rules"
)

func pushFixture(t *testing.T, m *Manager, req *rtmp.PublishRequest) {
	t.Helper()
	s, err := m.Publish(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range readTags(t, "../media/testdata/h264_aac.flv") {
		if err := s.Tag(tag); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(nil)
}

func TestPublishRefusals(t *testing.T) {
	m := newTestManager(t, rules.DefaultRules())
	if _, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "a.b", Args: url.Values{}}); !errors.Is(err, rtmp.ErrBadName) {
		t.Fatalf("bad stream name: %v", err)
	}
	if _, err := m.Publish(&rtmp.PublishRequest{App: "", Stream: "s", Args: url.Values{}}); !errors.Is(err, rtmp.ErrBadName) {
		t.Fatalf("empty app name: %v", err)
	}
	req := &rtmp.PublishRequest{App: "live", Stream: "s", Domain: "Example.COM", Args: url.Values{}}
	s, err := m.Publish(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "s", Domain: "example.com", Args: url.Values{}}); err == nil {
		t.Fatal("second publisher on a live stream key accepted (domain compared case-insensitively)")
	}
	if got := m.Streams(); len(got) != 1 || !got[0].Recording || got[0].Domain != "example.com" {
		t.Fatalf("streams: %+v", got)
	}
	s.Close(nil)
	if _, err := m.Publish(req); err != nil {
		t.Fatalf("publish after the first ended: %v", err)
	}
}

func TestStartModes(t *testing.T) {
	rs := []rules.Rule{
		{DomainName: "*", AppName: "manual", RecordFormats: []rules.RecordFormat{{Format: rules.M3U8}}, OnDemand: rules.OnDemandManual},
		{DomainName: "*", AppName: "url", RecordFormats: []rules.RecordFormat{{Format: rules.M3U8}}, OnDemand: rules.OnDemandPushURL},
		{DomainName: "*", AppName: "auto", RecordFormats: []rules.RecordFormat{{Format: rules.M3U8}}},
	}
	m := newTestManager(t, rs)
	cases := []struct {
		app, query string
		record     bool
	}{
		{"auto", "", true},
		{"manual", "", false},
		{"url", "", false},
		{"url", "record_config=" + url.QueryEscape(`{"NeedRecord":true}`), true},
		{"url", "record_config=" + url.QueryEscape(`{"NeedRecord":false}`), false},
		{"url", "record_config=garbage", false},
		{"other", "", false}, // no rule matches
	}
	for i, c := range cases {
		args, _ := url.ParseQuery(c.query)
		stream := "s" + string(rune('a'+i))
		pushFixture(t, m, &rtmp.PublishRequest{App: c.app, Stream: stream, Domain: "d", Args: args})
		m.Shutdown(context.Background())
		files, err := m.cfg.Catalog.ListFiles(context.Background(), catalog.FileQuery{App: c.app, Stream: stream})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(files) == 1 && files[0].Status == catalog.FileDone; got != c.record {
			t.Errorf("%s?%s: recorded=%v, want %v (%+v)", c.app, c.query, got, c.record, files)
		}
		m.mu.Lock()
		m.closed = false // Shutdown refuses further publishes; reopen for the next case
		m.mu.Unlock()
	}
}
