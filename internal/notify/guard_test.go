package notify

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livrec/livrec/internal/record"
)

// TestUnsafeURLsRefused: by default a notifyUrl or onDemandUrl naming a loopback,
// private, link-local (metadata), unspecified, multicast or otherwise non-public address
// is refused with InvalidNotifyUrl.Unsafe / InvalidOnDemandUrl.Unsafe, as are localhost
// names and numeric hosts that resolvers read as addresses; the options allow them.
func TestUnsafeURLsRefused(t *testing.T) {
	ctx := context.Background()
	unsafe := []string{
		"http://127.0.0.1:8080/cb", "http://127.1/cb", "http://[::1]/cb", "http://169.254.169.254/latest/meta-data/",
		"http://[fd00:ec2::254]/", "http://100.100.100.200/latest/meta-data/", "http://10.0.0.1/", "http://172.16.5.4/",
		"http://192.168.1.1/", "http://0.0.0.0:80/", "http://0.1.2.3/", "http://[::]/", "http://[::ffff:127.0.0.1]/",
		"http://[::ffff:a9fe:a9fe]/", "http://224.0.0.1/", "http://[ff02::1]/", "http://[fe80::1]/", "http://localhost:9000/",
		"http://LocalHost./", "http://api.localhost/", "http://2130706433/", "http://0x7f000001/", "http://017700000001/",
		"http://255.255.255.255/", "http://[64:ff9b::7f00:1]/",
	}
	n := newNotifier(t, openDB(t), Options{Logger: quiet}, false)
	for _, u := range unsafe {
		err := n.Put(ctx, Config{DomainName: "d.example.com", NotifyURL: u})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "notifyUrl" || ve.Code != CodeUnsafeNotifyURL {
			t.Errorf("notifyUrl %s: got %v, want %s", u, err, CodeUnsafeNotifyURL)
		}
		err = n.Put(ctx, Config{DomainName: "d.example.com", NotifyURL: "https://cb.example.com/", OnDemandURL: u})
		if !errors.As(err, &ve) || ve.Field != "onDemandUrl" || ve.Code != CodeUnsafeOnDemandURL {
			t.Errorf("onDemandUrl %s: got %v, want %s", u, err, CodeUnsafeOnDemandURL)
		}
	}
	for _, u := range []string{"https://cb.example.com/rec", "http://8.8.8.8:8080/x", "http://[2606:4700::1111]/"} {
		if err := n.Put(ctx, Config{DomainName: "d.example.com", NotifyURL: u}); err != nil {
			t.Errorf("public %s refused: %v", u, err)
		}
	}

	all := newNotifier(t, openDB(t), Options{Logger: quiet, AllowPrivateCallbacks: true}, false)
	for _, u := range unsafe {
		if err := all.Put(ctx, Config{DomainName: "d.example.com", NotifyURL: u}); err != nil {
			t.Errorf("allowPrivateCallbacks: %s refused: %v", u, err)
		}
	}

	some := newNotifier(t, openDB(t), Options{Logger: quiet, CallbackAllowList: []string{"10.0.0.0/8", "192.168.1.1", "hooks.internal"}}, false)
	for u, ok := range map[string]bool{"http://10.1.2.3/": true, "http://192.168.1.1/": true, "http://192.168.1.2/": false,
		"http://hooks.internal:81/": true, "http://127.0.0.1/": false, "http://169.254.169.254/": false} {
		if err := some.Put(ctx, Config{DomainName: "d.example.com", NotifyURL: u}); (err == nil) != ok {
			t.Errorf("callbackAllowList: %s: %v, want allowed %v", u, err, ok)
		}
	}
	if _, err := New(openDB(t).DB(), Options{Logger: quiet, CallbackAllowList: []string{"10.0.0.0/33"}}); err == nil ||
		!strings.Contains(err.Error(), "callbackAllowList[0]") {
		t.Errorf("bad allow list entry: %v", err)
	}
}

// TestUnsafeAddressAtConnection: the address is checked again when livrec connects, on
// the resolved address: a configuration stored while it was allowed (or a name that now
// resolves to a loopback address) gets no request through.
func TestUnsafeAddressAtConnection(t *testing.T) {
	rc := newReceiver(t)
	db := openDB(t)
	// Stored under a policy that allowed it.
	old := newNotifier(t, db, fastOpts(), false)
	mustPut(t, old, Config{DomainName: "demo.example.com", NotifyURL: rc.URL + "/cb"})
	old.Close()

	opt := fastOpts()
	opt.AllowPrivateCallbacks, opt.MaxTries = false, 1
	n := newNotifier(t, db, opt, true)
	n.Notify(fileEvent("demo.example.com", "s1", nil))
	waitFor(t, "the try", func() bool { return onlyStatus(t, n) == StatusFailed })
	if cb := onlyCallback(t, n); !strings.Contains(cb.LastError, "not allowed") || cb.Attempts[0].ResponseCode != 0 {
		t.Errorf("callback to a loopback receiver: %+v", cb)
	}
	// The on-demand question has no configuration step here: only the dialer stands in
	// the way, and it sees what "localhost" resolved to.
	port := rc.URL[strings.LastIndex(rc.URL, ":"):]
	for _, u := range []string{rc.URL + "/ask", "http://localhost" + port + "/ask"} {
		if _, err := n.AskOnDemand(context.Background(), u, OnDemandQuery{Domain: "d", App: "a", Stream: "s"}); err == nil ||
			!strings.Contains(err.Error(), "not allowed") {
			t.Errorf("on-demand question to %s: %v", u, err)
		}
	}
	rc.none(t, 100*time.Millisecond)

	// A host name of the allow list is connected to whatever it resolves to.
	byName := newNotifier(t, openDB(t), Options{Logger: quiet, CallbackAllowList: []string{"localhost"}}, false)
	rc.set(func(_ int, w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"NeedRecord":true}`)) })
	if d, err := byName.AskOnDemand(context.Background(), "http://localhost"+port+"/ask", OnDemandQuery{Domain: "d"}); err != nil || !d.NeedRecord {
		t.Errorf("allow-listed localhost: %+v %v", d, err)
	}
	rc.next(t)
}

// TestNoRedirectsNoBody: neither callbacks nor on-demand questions follow a redirect (it
// could point anywhere), and a callback's stored answer is its status, never the body.
func TestNoRedirectsNoBody(t *testing.T) {
	target := newReceiver(t)
	rc := newReceiver(t)
	rc.set(func(_ int, w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/secret") {
			w.Write([]byte("root:x:0:0:internal data"))
			return
		}
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	})
	opt := fastOpts()
	opt.MaxTries = 1
	n := newNotifier(t, openDB(t), opt, true)
	if _, err := n.AskOnDemand(context.Background(), rc.URL+"/ask", OnDemandQuery{Domain: "d"}); err == nil ||
		!strings.Contains(err.Error(), "HTTP status 302") {
		t.Errorf("on-demand question answered by a redirect: %v", err)
	}
	rc.next(t)

	mustPut(t, n, Config{DomainName: "demo.example.com", NotifyURL: rc.URL + "/cb"})
	n.Notify(fileEvent("demo.example.com", "s1", nil))
	waitFor(t, "the try", func() bool { return onlyStatus(t, n) == StatusFailed })
	rc.next(t)
	target.none(t, 100*time.Millisecond)

	mustPut(t, n, Config{DomainName: "other.example.com", NotifyURL: rc.URL + "/secret"})
	n.Notify(statusEvent(record.EventStarted, "other.example.com", "s2"))
	n.Notify(fileEvent("other.example.com", "s2", nil))
	rc.next(t)
	var got *Callback
	waitFor(t, "delivery", func() bool {
		cbs, _ := n.ListCallbacks(context.Background(), Query{Domain: "other.example.com", Status: StatusSuccess})
		if len(cbs) == 1 {
			got = &cbs[0]
		}
		return got != nil
	})
	if a := got.Attempts[0]; a.Response != "200 OK" || strings.Contains(a.Response, "internal") {
		t.Errorf("stored answer %q, want the status only", a.Response)
	}
}
