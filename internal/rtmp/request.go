package rtmp

import (
	"net"
	"net/url"
	"strings"
)

// newPublishRequest builds the request for a publish of name on a connection whose
// connect command carried app and tcURL.
func newPublishRequest(app, tcURL, name, publishType string, remote net.Addr) *PublishRequest {
	stream, streamQuery, _ := strings.Cut(name, "?")
	appName, appQuery, _ := strings.Cut(app, "?")
	appName = strings.Trim(appName, "/")

	var tcHost, tcQuery, tcPath string
	if u, err := url.Parse(tcURL); err == nil {
		tcHost, tcQuery, tcPath = u.Hostname(), u.RawQuery, u.Path
	} else if _, q, ok := strings.Cut(tcURL, "?"); ok {
		tcQuery = q
	}
	if appName == "" {
		appName = strings.Trim(tcPath, "/")
	}

	args := url.Values{}
	addQuery(args, streamQuery)
	addQuery(args, tcQuery)
	if tcQuery == "" {
		// Some clients (e.g. OBS with "rtmp://host/app?k=v" as server) put the
		// arguments in the app; the tcUrl normally repeats them, but not always.
		addQuery(args, appQuery)
	}

	domain := args.Get("vhost")
	if domain == "" {
		domain = tcHost
	}
	return &PublishRequest{
		App:         appName,
		Stream:      stream,
		Domain:      domain,
		TcURL:       tcURL,
		Args:        args,
		PublishType: publishType,
		RemoteAddr:  remote,
	}
}

// addQuery appends the pairs of query q to v. Malformed pairs are skipped (ParseQuery
// keeps going after an error and returns what it could decode).
func addQuery(v url.Values, q string) {
	if q == "" {
		return
	}
	parsed, _ := url.ParseQuery(q)
	// Values of one key keep their query order; keys have no order in url.Values.
	for k, vs := range parsed {
		for _, s := range vs {
			v.Add(k, s)
		}
	}
}
