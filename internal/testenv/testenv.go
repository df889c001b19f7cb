// Package testenv is the one place that decides what a test does when an external tool
// it needs (ffmpeg, ffprobe, chromium, versitygw, node) is missing: it fails, naming the tool
// and how to install it, so that a machine without the tools cannot pass the suite by
// skipping. Setting LIVREC_SKIP_E2E=1 opts out: every test that needs a tool then skips,
// whether the tool is there or not, so the opt-out gives the same result everywhere.
//
// ./test at the repository root installs the tools and runs the suite.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SkipEnv is the variable that turns the failures into skips.
const SkipEnv = "LIVREC_SKIP_E2E"

// Tools a test can require.
const (
	FFmpeg    = "ffmpeg"
	FFprobe   = "ffprobe"
	Chromium  = "chromium"
	Versitygw = "versitygw"
	Node      = "node" // with npm: the console's browser tests
	NPM       = "npm"
)

// VersitygwVersion is the version .ci/install-versitygw installs by default; its cache
// directory is one of the places Path looks.
const VersitygwVersion = "v1.8.0"

// Skipped reports whether the user asked to skip the tests that need tools.
func Skipped() bool { return os.Getenv(SkipEnv) == "1" }

// Require fails t (or skips it under LIVREC_SKIP_E2E=1) unless every tool is installed.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		Path(t, tool)
	}
}

// Path returns the path of tool's binary, failing t (or skipping it under
// LIVREC_SKIP_E2E=1) when it is not installed.
func Path(t testing.TB, tool string) string {
	t.Helper()
	if Skipped() {
		t.Skipf("needs %s: skipped because %s=1", tool, SkipEnv)
	}
	p, missing := lookup(tool)
	if missing != "" {
		t.Fatalf("%s is not installed (%s) — or run ./test, which installs what is missing; %s=1 skips the tests that need it",
			tool, missing, SkipEnv)
	}
	return p
}

// lookup finds tool; when it is missing it returns how to install it instead.
func lookup(tool string) (path, missing string) {
	switch tool {
	case FFmpeg, FFprobe:
		if p, err := exec.LookPath(tool); err == nil {
			return p, ""
		}
		return "", "apt-get install ffmpeg"
	case Chromium:
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p, ""
			}
		}
		return "", "apt-get install chromium"
	case Versitygw:
		return versitygw()
	case Node, NPM:
		if p, err := exec.LookPath(tool); err == nil {
			return p, ""
		}
		return "", "apt-get install nodejs npm"
	}
	panic("testenv: unknown tool " + tool)
}

// versitygw looks in $LIVREC_VERSITYGW, then PATH, then the cache of .ci/install-versitygw.
func versitygw() (path, missing string) {
	const install = "export LIVREC_VERSITYGW=$(.ci/install-versitygw)"
	if p := os.Getenv("LIVREC_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Sprintf("LIVREC_VERSITYGW: %v; %s", err, install)
		}
		return p, ""
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, ""
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if h, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(h, ".cache")
		}
	}
	if cache != "" {
		p := filepath.Join(cache, "livrec", "versitygw-"+VersitygwVersion, "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, ""
		}
	}
	return "", install
}
