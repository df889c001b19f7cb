package vod

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/schema/schematest"
	"github.com/livrec/livrec/internal/storage"
	"github.com/livrec/livrec/internal/testenv"
)

// TestProcessorTranscodeFail: an original ffmpeg cannot read fails its transcode job
// after its retries: the asset becomes TranscodeFail with the error as the reason,
// TranscodeComplete says fail, and the asset can be deleted.
func TestProcessorTranscodeFail(t *testing.T) {
	testenv.Require(t, testenv.FFmpeg, testenv.FFprobe)
	schematest.EachDriver(t, testProcessorTranscodeFail)
}

func testProcessorTranscodeFail(t *testing.T, driver string) {
	cat, st, f := fixture(t, driver) // its segments are not MPEG-TS
	ctx := context.Background()
	ob := &outbox{}
	lib, err := New(Options{Catalog: cat, Outbox: ob, Callback: CallbackConfig{URL: "http://127.0.0.1:9/vod"},
		StoreFor: func(string, string) (storage.Store, error) { return st, nil }})
	if err != nil {
		t.Fatal(err)
	}
	q, err := jobs.Open(ctx, cat.DB(), jobs.Config{MaxAttempts: 2, StaleAfter: time.Second, PollInterval: 50 * time.Millisecond,
		RetryBase: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	groups, err := NewTranscodeGroups([]TranscodeGroup{{ID: "g", Templates: []TranscodeTemplate{{Definition: "LD", Height: 360, VideoBitrate: 400}}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProcessor(ProcessorOptions{Library: lib, Queue: q, Groups: groups, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	lib.SetHooks(p.Hooks())
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q.Stop(ctx)
	a, err := lib.Create(ctx, &Asset{Kind: KindCycle, Status: StatusNormal, Domain: f.Domain, App: f.App, Stream: f.Stream, TaskID: f.TaskID,
		Title: "x", TranscodeGroupID: "g", PlayInfos: []PlayInfo{{Definition: DefinitionOriginal, Format: "m3u8", Key: f.Key}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := lib.Get(ctx, a.ID); got.Status != StatusTranscoding {
		t.Fatalf("status %s after creation, want Transcoding", got.Status)
	}
	if err := lib.Delete(ctx, a.ID); !errors.Is(err, ErrBusy) {
		t.Fatalf("delete while transcoding: %v, want ErrBusy", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var got *Asset
	for {
		if got, err = lib.Get(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if got.Status != StatusTranscoding || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.Status != StatusTranscodeFail || !strings.HasPrefix(got.Error, "LD m3u8: ") {
		t.Fatalf("status %s, error %q; want TranscodeFail with the LD job's error", got.Status, got.Error)
	}
	t.Logf("reason: %s", got.Error)
	var tc *TranscodeComplete
	for deadline := time.Now().Add(10 * time.Second); tc == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ob.mu.Lock()
		for _, m := range ob.msgs {
			if m.Event == EventTranscodeComplete {
				tc = &TranscodeComplete{}
				json.Unmarshal(m.Body, tc)
			}
		}
		ob.mu.Unlock()
	}
	if tc == nil || tc.Status != "fail" || len(tc.StreamInfos) != 1 || tc.StreamInfos[0].ErrorMessage == "" {
		t.Fatalf("TranscodeComplete %+v, want fail with the stream's error", tc)
	}
	if err := lib.Delete(ctx, a.ID); err != nil {
		t.Fatalf("delete after the failure: %v", err)
	}
}
