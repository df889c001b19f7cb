package pushauth

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/rtmp"
)

func req(domain, authKey, ip string) *rtmp.PublishRequest {
	args := url.Values{}
	if authKey != "" {
		args.Set("auth_key", authKey)
	}
	return &rtmp.PublishRequest{App: "live", Stream: "s1", Domain: domain, Args: args,
		RemoteAddr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}}
}

func TestCheck(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c, err := New([]DomainKeys{{DomainName: "Push.Example.com", PrimaryKey: "k1", SecondaryKey: "k2", Validity: 60}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return now }
	// The reference's demo pattern: md5("/app/stream-ts-0-0-KEY").
	sum := md5.Sum([]byte("/app/stream-1740562218-0-0-KEY"))
	if got, want := Sign("app", "stream", "KEY", time.Unix(1740562218, 0), "0", "0"), "1740562218-0-0-"+hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("sign: %s, want %s", got, want)
	}
	cases := []struct {
		name, domain, key string
		ok                bool
	}{
		{"primary", "push.example.com", Sign("live", "s1", "k1", now.Add(time.Hour), "abc", "0"), true},
		{"secondary", "PUSH.example.com", Sign("live", "s1", "k2", now.Add(time.Hour), "abc", "0"), true},
		{"within validity", "push.example.com", Sign("live", "s1", "k1", now.Add(-30*time.Second), "abc", "0"), true},
		{"expired", "push.example.com", Sign("live", "s1", "k1", now.Add(-61*time.Second), "abc", "0"), false},
		{"wrong key", "push.example.com", Sign("live", "s1", "nope", now.Add(time.Hour), "abc", "0"), false},
		{"other stream", "push.example.com", Sign("live", "s2", "k1", now.Add(time.Hour), "abc", "0"), false},
		{"missing", "push.example.com", "", false},
		{"malformed", "push.example.com", "123-abc", false},
		{"domain without keys", "other.example.com", "", true},
	}
	for i, cs := range cases {
		err := c.Check(req(cs.domain, cs.key, "192.0.2."+string(rune('1'+i))))
		if (err == nil) != cs.ok {
			t.Errorf("%s: err=%v, want ok=%v", cs.name, err, cs.ok)
		}
		if err != nil && (!errors.Is(err, ErrDenied) || strings.Contains(err.Error(), "k1")) {
			t.Errorf("%s: error %q must wrap ErrDenied and never show the key", cs.name, err)
		}
	}
}

func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	c, _ := New([]DomainKeys{{DomainName: "d", PrimaryKey: "k"}}, nil)
	c.Now = func() time.Time { return now }
	good := Sign("live", "s1", "k", now.Add(time.Hour), "r", "0")
	for i := 0; i < maxFailures; i++ {
		if err := c.Check(req("d", "bad-bad-bad-bad", "198.51.100.1")); err == nil {
			t.Fatal("bad key accepted")
		}
	}
	if err := c.Check(req("d", good, "198.51.100.1")); err == nil || !strings.Contains(err.Error(), "too many failed attempts") {
		t.Fatalf("a blocked client got through: %v", err)
	}
	if err := c.Check(req("d", good, "198.51.100.2")); err != nil {
		t.Fatalf("another client is not blocked: %v", err)
	}
	now = now.Add(banTime + time.Second)
	if err := c.Check(req("d", good, "198.51.100.1")); err != nil {
		t.Fatalf("the block did not expire: %v", err)
	}
}
