package record

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/flv"
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
		files, err := m.sqlite().ListFiles(context.Background(), catalog.FileQuery{App: c.app, Stream: stream})
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

// TestManualCommands: onDemand 7 records nothing until start; start begins at the last
// keyframe already received; stop pauses; start resumes; restart and cancel_delay
// generate files now.
func TestManualCommands(t *testing.T) {
	ctx := context.Background()
	m := newTestManager(t, []rules.Rule{{DomainName: "*", AppName: "*", OnDemand: rules.OnDemandManual,
		RecordFormats: []rules.RecordFormat{{Format: rules.M3U8}, {Format: rules.FLV}}}})
	tags := readTags(t, "../media/testdata/h264_aac.flv")
	s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "m", Domain: "d", Args: url.Values{}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := func(c string) error { return m.Command(ctx, "d", "live", "m", c) }
	if err := cmd("stop"); !errors.Is(err, ErrTaskNotStarted) {
		t.Fatalf("stop without a task: %v", err)
	}
	if err := m.Command(ctx, "d", "live", "other", "start"); !errors.Is(err, ErrStreamNotLive) {
		t.Fatalf("start on a stream that is not live: %v", err)
	}
	if err := cmd("pause"); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}
	half := len(tags) / 2
	for _, tag := range tags[:half] {
		s.Tag(tag)
	}
	if st := m.Streams(); st[0].Recording {
		t.Fatalf("onDemand 7 recorded without a command: %+v", st)
	}
	if err := cmd("start"); err != nil {
		t.Fatal(err)
	}
	if err := cmd("start"); !errors.Is(err, ErrTaskAlreadyStarted) {
		t.Fatalf("second start: %v", err)
	}
	for _, tag := range tags[half:] {
		s.Tag(tag)
	}
	if err := cmd("restart"); err != nil {
		t.Fatal(err)
	}
	files := func(status string) []catalog.File {
		fs, err := m.sqlite().ListFiles(ctx, catalog.FileQuery{Stream: "m", Status: status})
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	done := files(catalog.FileDone)
	if len(done) != 2 {
		t.Fatalf("restart should generate the m3u8 and flv files, got %+v", done)
	}
	// The recording began at the last keyframe before the start command, not at the next.
	var lastKey, lastTS uint32
	for i, tag := range tags {
		if tag.Type == flv.TagVideo && len(tag.Body) > 1 && tag.Body[0]>>4 == 1 && tag.Body[1] == 1 && i < half {
			lastKey = tag.Timestamp
		}
		lastTS = max(lastTS, tag.Timestamp)
	}
	want := float64(lastTS-lastKey) / 1000
	for _, f := range done {
		if f.Duration < want {
			t.Fatalf("%s recorded %.3f s: it should start at the keyframe before the command (%.3f s of media)", f.Format, f.Duration, want)
		}
	}
	if err := cmd("stop"); err != nil {
		t.Fatal(err)
	}
	if st := m.Streams(); st[0].State != catalog.TaskPaused {
		t.Fatalf("after stop: %+v", st)
	}
	if err := cmd("start"); err != nil {
		t.Fatalf("start after stop: %v", err)
	}
	if err := cmd("cancel_delay"); err != nil {
		t.Fatal(err)
	}
	if st := m.Streams(); st[0].Recording || st[0].TaskID != "" {
		t.Fatalf("after cancel_delay the stream is live but not recorded: %+v", st)
	}
	s.Close(nil)
}

// TestTimeWindow: a stream-level rule with a window records only inside it: nothing
// before startTime, a task from startTime on, and the file generated at endTime.
func TestTimeWindow(t *testing.T) {
	ctx := context.Background()
	start := time.Now().Add(300 * time.Millisecond)
	end := start.Add(700 * time.Millisecond)
	m := newTestManager(t, []rules.Rule{{DomainName: "d", AppName: "live", StreamName: "w", StartTime: &start, EndTime: &end,
		RecordFormats: []rules.RecordFormat{{Format: rules.FLV}}}})
	s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "w", Domain: "d", Args: url.Values{}})
	if err != nil {
		t.Fatal(err)
	}
	tags := readTags(t, "../media/testdata/h264_aac.flv")
	for _, tag := range tags[:20] {
		s.Tag(tag)
	}
	if st := m.Streams(); st[0].Recording {
		t.Fatal("recording before the window")
	}
	time.Sleep(time.Until(start) + 100*time.Millisecond)
	if st := m.Streams(); !st[0].Recording {
		t.Fatalf("not recording inside the window: %+v", st)
	}
	for _, tag := range tags[20:] {
		s.Tag(tag)
	}
	time.Sleep(time.Until(end) + 200*time.Millisecond)
	if st := m.Streams(); st[0].Recording {
		t.Fatal("still recording after the window")
	}
	fs, _ := m.sqlite().ListFiles(ctx, catalog.FileQuery{Stream: "w", Status: catalog.FileDone})
	if len(fs) != 1 {
		t.Fatalf("want the file generated at the window's end, got %+v", fs)
	}
	s.Close(nil)
}

// TestPublishDomainNormalized: spellings of one vhost are one stream key; a vhost that
// is no host name is refused with BadName, naming the value.
func TestPublishDomainNormalized(t *testing.T) {
	m := newTestManager(t, rules.DefaultRules())
	s, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "s1", Domain: " A.Test.", Args: url.Values{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(nil)
	if got := m.Streams(); len(got) != 1 || got[0].Domain != "a.test" {
		t.Fatalf("streams: %+v, want domain a.test", got)
	}
	for _, d := range []string{"a.test", "a.test:1935", "A.TEST.", "a.test.:1935"} {
		if _, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "s1", Domain: d, Args: url.Values{}}); err == nil || errors.Is(err, rtmp.ErrBadName) {
			t.Errorf("vhost %q: %v, want the stream refused as already published (it is a.test/live/s1)", d, err)
		}
	}
	for _, d := range []string{"a..b", strings.Repeat("a", 300), "a b", "a.test:0", "x/y"} {
		_, err := m.Publish(&rtmp.PublishRequest{App: "live", Stream: "s2", Domain: d, Args: url.Values{}})
		if !errors.Is(err, rtmp.ErrBadName) || !strings.Contains(err.Error(), "domain") {
			t.Errorf("vhost %.40q: %v, want BadName naming the domain", d, err)
		}
	}
	if err := m.Command(context.Background(), "A.Test:1935", "live", "s1", CommandStart); !errors.Is(err, ErrTaskAlreadyStarted) {
		t.Errorf("command on A.Test:1935: %v, want %v (the stream of a.test)", err, ErrTaskAlreadyStarted)
	}
}
