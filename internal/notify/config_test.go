package notify

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/livrec/livrec/internal/schema/schematest"
)

func TestConfigValidate(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		ok := Config{DomainName: "demo.example.com", NotifyURL: "https://cb.example.com/rec?x=1", OnDemandURL: "http://10.0.0.1:8080/ondemand"}
		if err := ok.Validate(); err != nil {
			t.Fatalf("valid config: %v", err)
		}
		cases := []struct {
			name  string
			edit  func(*Config)
			field string
			code  string
		}{
			{"no domain", func(c *Config) { c.DomainName = "" }, "domainName", CodeMissingDomainName},
			{"domain with slash", func(c *Config) { c.DomainName = "a/b" }, "domainName", CodeInvalidDomainName},
			{"domain with space", func(c *Config) { c.DomainName = "a b" }, "domainName", CodeInvalidDomainName},
			{"no notifyUrl", func(c *Config) { c.NotifyURL = "" }, "notifyUrl", CodeMissingNotifyURL},
			{"ftp notifyUrl", func(c *Config) { c.NotifyURL = "ftp://cb.example.com/" }, "notifyUrl", CodeInvalidNotifyURL},
			{"relative notifyUrl", func(c *Config) { c.NotifyURL = "/callback" }, "notifyUrl", CodeInvalidNotifyURL},
			{"no scheme", func(c *Config) { c.NotifyURL = "cb.example.com/callback" }, "notifyUrl", CodeInvalidNotifyURL},
			{"no host", func(c *Config) { c.NotifyURL = "http:///callback" }, "notifyUrl", CodeInvalidNotifyURL},
			{"opaque", func(c *Config) { c.NotifyURL = "http:cb.example.com" }, "notifyUrl", CodeInvalidNotifyURL},
			{"space", func(c *Config) { c.NotifyURL = "http://cb.example.com/a b" }, "notifyUrl", CodeInvalidNotifyURL},
			{"bad escape", func(c *Config) { c.NotifyURL = "http://cb.example.com/%zz" }, "notifyUrl", CodeInvalidNotifyURL},
			{"fragment", func(c *Config) { c.NotifyURL = "http://cb.example.com/#x" }, "notifyUrl", CodeInvalidNotifyURL},
			{"too long", func(c *Config) { c.NotifyURL = "http://cb.example.com/" + strings.Repeat("a", 2048) }, "notifyUrl", CodeInvalidNotifyURL},
			{"bad onDemandUrl", func(c *Config) { c.OnDemandURL = "rtmp://x/y" }, "onDemandUrl", CodeInvalidOnDemandURL},
			{"long key", func(c *Config) { c.NotifyAuthKey = strings.Repeat("k", 300) }, "notifyAuthKey", CodeInvalidNotifyAuthKey},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := ok
				tc.edit(&c)
				err := c.Validate()
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("got %v, want a *ValidationError", err)
				}
				if ve.Field != tc.field || ve.Code != tc.code {
					t.Fatalf("got field %q code %q (%v), want %q %q", ve.Field, ve.Code, err, tc.field, tc.code)
				}
				if !strings.HasPrefix(err.Error(), tc.field+": ") {
					t.Fatalf("error %q does not start with the field name", err)
				}
			})
		}
		// Several problems are all reported.
		err := (&Config{NotifyURL: "x"}).Validate()
		var es ValidationErrors
		if !errors.As(err, &es) || len(es) != 2 || es[0].Field != "domainName" || es[1].Field != "notifyUrl" {
			t.Fatalf("got %v", err)
		}
	})
}

func TestConfigCRUD(t *testing.T) {
	schematest.EachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		c := openDB(t, driver)
		n := newNotifier(t, c, fastOpts(), false)
		if _, err := n.Get(ctx, "a.example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of unknown: %v", err)
		}
		err := n.Put(ctx, Config{DomainName: "a.example.com", NotifyURL: "nope"})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "notifyUrl" {
			t.Fatalf("Put invalid: %v", err)
		}
		a := Config{DomainName: "A.Example.com", NotifyURL: "http://cb/a", OnDemandURL: "http://cb/od", NeedStatusNotify: true,
			NotifyReqAuth: true, NotifyAuthKey: "k1"}
		mustPut(t, n, a)
		mustPut(t, n, Config{DomainName: "b.example.com", NotifyURL: "http://cb/b"})
		got, err := n.Get(ctx, "a.EXAMPLE.com")
		if err != nil {
			t.Fatal(err)
		}
		want := a
		want.DomainName = "a.example.com"
		if *got != want {
			t.Fatalf("Get = %+v, want %+v", *got, want)
		}
		// Replace.
		mustPut(t, n, Config{DomainName: "a.example.com", NotifyURL: "https://cb/a2"})
		if got, _ := n.Get(ctx, "a.example.com"); got.NotifyURL != "https://cb/a2" || got.NeedStatusNotify || got.NotifyAuthKey != "" {
			t.Fatalf("after replace: %+v", got)
		}
		list, err := n.List(ctx)
		if err != nil || len(list) != 2 || list[0].DomainName != "a.example.com" || list[1].DomainName != "b.example.com" {
			t.Fatalf("List = %+v, %v", list, err)
		}
		if err := n.Delete(ctx, "B.example.com"); err != nil {
			t.Fatal(err)
		}
		if err := n.Delete(ctx, "b.example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second Delete: %v", err)
		}
		if _, ok := n.config("b.example.com"); ok {
			t.Fatal("deleted config still used by Notify")
		}
		// A new Notifier over the same database sees the stored configuration.
		n2 := newNotifier(t, c, fastOpts(), false)
		if cfg, ok := n2.config("A.example.com"); !ok || cfg.NotifyURL != "https://cb/a2" {
			t.Fatalf("reloaded config: %+v %v", cfg, ok)
		}
		if list, _ := n2.List(ctx); len(list) != 1 {
			t.Fatalf("reloaded List = %+v", list)
		}
	})
}
