package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OnDemandQuery describes the stream the on-demand question is about.
type OnDemandQuery struct {
	Domain, App, Stream string
	// Codec of the video track: "h264", "h265" ("avc"/"hevc" are translated); "" when
	// unknown or audio only (the receiver reads blank as h264).
	Codec string
	// VideoBitrate in kbit/s, 0 when unknown.
	VideoBitrate int
}

// Decision is the on-demand receiver's answer.
type Decision struct {
	NeedRecord bool
	// Formats, lower case, as answered ("Format"); nil when not given. The caller
	// intersects them with the rule's formats; an empty intersection means no recording.
	Formats []string
	// Intervals per format ("mp4", "flv", "m3u8", any other key lower-cased), in
	// seconds (5–21600), overriding the rule's cycle; nil when not given.
	Intervals map[string]int
}

// Bounds of an answered interval (reference §3.3).
const (
	MinInterval = 5
	MaxInterval = 21600
)

// maxOnDemandBody is where the answer is cut (reference §3.3).
const maxOnDemandBody = 2048

// AskOnDemand asks rawURL (the domain's onDemandUrl) whether to record the stream q:
// GET with query domain, app, stream, codec, vbitrate, answered by HTTP 200 and
// {"ApiVersion":"1.0","NeedRecord":true,"Interval":{"Mp4":300},"Format":["mp4"]}.
// Only the first 2048 bytes of the answer are read. No answer within the timeout
// (Options.OnDemandTimeout), another status, a body that is not that JSON object, a
// missing or non-boolean NeedRecord, or an interval out of 5–21600 s is an error whose
// text says why; the caller then does not record.
func (n *Notifier) AskOnDemand(ctx context.Context, rawURL string, q OnDemandQuery) (Decision, error) {
	d, err := askOnDemand(ctx, n.http, n.opt.OnDemandTimeout, rawURL, q)
	switch {
	case err != nil:
		n.m.onDemand.WithLabelValues("error").Inc()
	case d.NeedRecord:
		n.m.onDemand.WithLabelValues("record").Inc()
	default:
		n.m.onDemand.WithLabelValues("skip").Inc()
	}
	return d, err
}

func askOnDemand(ctx context.Context, client *http.Client, timeout time.Duration, rawURL string, q OnDemandQuery) (Decision, error) {
	fail := func(format string, args ...any) (Decision, error) {
		return Decision{}, fmt.Errorf("on-demand question to %s: %s", rawURL, fmt.Sprintf(format, args...))
	}
	if msg := checkURL(rawURL); msg != "" {
		return fail("bad onDemandUrl: %s", msg)
	}
	u, _ := url.Parse(rawURL)
	v := u.Query()
	v.Set("domain", q.Domain)
	v.Set("app", q.App)
	v.Set("stream", q.Stream)
	v.Set("codec", onDemandCodec(q.Codec))
	v.Set("vbitrate", strconv.Itoa(max(q.VideoBitrate, 0)))
	u.RawQuery = v.Encode()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail("%v", err)
	}
	req.Header.Set("User-Agent", "livrec")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fail("no answer within %v", timeout)
		}
		return fail("%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOnDemandBody+1))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fail("answer not complete within %v", timeout)
		}
		return fail("reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail("HTTP status %d, want 200", resp.StatusCode)
	}
	truncated := len(body) > maxOnDemandBody
	if truncated {
		body = body[:maxOnDemandBody]
	}
	d, err := parseDecision(body)
	if err != nil {
		if truncated {
			return fail("answer longer than %d bytes, cut there: %v", maxOnDemandBody, err)
		}
		return fail("%v", err)
	}
	return d, nil
}

func onDemandCodec(c string) string {
	switch c = strings.ToLower(c); c {
	case "avc", "avc1":
		return "h264"
	case "hevc", "hvc1", "hev1":
		return "h265"
	}
	return c
}

// parseDecision reads the on-demand answer.
func parseDecision(body []byte) (Decision, error) {
	var raw struct {
		ApiVersion any             `json:"ApiVersion"`
		NeedRecord json.RawMessage `json:"NeedRecord"`
		Interval   json.RawMessage `json:"Interval"`
		Format     json.RawMessage `json:"Format"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return Decision{}, fmt.Errorf("answer is not a JSON object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Decision{}, errors.New("answer has data after the JSON object")
	}
	var d Decision
	if isNull(raw.NeedRecord) {
		return Decision{}, errors.New("answer has no NeedRecord")
	}
	if err := json.Unmarshal(raw.NeedRecord, &d.NeedRecord); err != nil {
		return Decision{}, fmt.Errorf("NeedRecord is %s, want true or false", raw.NeedRecord)
	}
	if !isNull(raw.Format) {
		var fs []string
		if err := json.Unmarshal(raw.Format, &fs); err != nil {
			return Decision{}, fmt.Errorf("Format is %s, want an array of strings", raw.Format)
		}
		d.Formats = make([]string, 0, len(fs))
		for _, f := range fs {
			if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
				d.Formats = append(d.Formats, f)
			}
		}
	}
	if !isNull(raw.Interval) {
		var iv map[string]json.Number
		dec := json.NewDecoder(bytes.NewReader(raw.Interval))
		dec.UseNumber()
		if err := dec.Decode(&iv); err != nil {
			return Decision{}, fmt.Errorf("Interval is %s, want an object like {\"Mp4\":300}", raw.Interval)
		}
		keys := make([]string, 0, len(iv))
		for k := range iv {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic error text
		d.Intervals = make(map[string]int, len(iv))
		for _, k := range keys {
			s, err := strconv.Atoi(iv[k].String())
			if err != nil || s < MinInterval || s > MaxInterval {
				return Decision{}, fmt.Errorf("Interval.%s is %s, want whole seconds %d–%d", k, iv[k], MinInterval, MaxInterval)
			}
			d.Intervals[strings.ToLower(k)] = s
		}
	}
	return d, nil
}

func isNull(m json.RawMessage) bool {
	return len(m) == 0 || string(m) == "null"
}
