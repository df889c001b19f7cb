package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHelperRequire is run by TestRequire in a child process with a controlled
// environment; on its own it does nothing.
func TestHelperRequire(t *testing.T) {
	tool := os.Getenv("TESTENV_HELPER_TOOL")
	if tool == "" {
		return
	}
	t.Logf("found %s", Path(t, tool))
}

// TestRequire runs Require in a child process whose PATH holds no tools: it fails naming
// the tool and its install command, skips naming LIVREC_SKIP_E2E under
// LIVREC_SKIP_E2E=1, and passes when the tool is there.
func TestRequire(t *testing.T) {
	empty := t.TempDir()
	run := func(tool string, env ...string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRequire$", "-test.v")
		cmd.Env = append([]string{"TESTENV_HELPER_TOOL=" + tool, "HOME=" + empty, "XDG_CACHE_HOME=" + empty}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct{ tool, install string }{
		{FFmpeg, "apt-get install ffmpeg"},
		{FFprobe, "apt-get install ffmpeg"},
		{Chromium, "apt-get install chromium"},
		{Versitygw, ".ci/install-versitygw"},
	} {
		out, err := run(c.tool, "PATH="+empty)
		if err == nil || !strings.Contains(out, "--- FAIL") || !strings.Contains(out, c.tool+" is not installed") ||
			!strings.Contains(out, c.install) || !strings.Contains(out, "./test") {
			t.Errorf("%s missing: err %v, output:\n%s", c.tool, err, out)
		}
		out, err = run(c.tool, "PATH="+empty, SkipEnv+"=1")
		if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, SkipEnv+"=1") {
			t.Errorf("%s missing, %s=1: err %v, output:\n%s", c.tool, SkipEnv, err, out)
		}
	}

	// A versitygw named by LIVREC_VERSITYGW that is not there is an error, not a fallback.
	out, err := run(Versitygw, "PATH="+empty, "LIVREC_VERSITYGW="+empty+"/nope")
	if err == nil || !strings.Contains(out, "LIVREC_VERSITYGW") {
		t.Errorf("LIVREC_VERSITYGW pointing nowhere: err %v, output:\n%s", err, out)
	}

	// Present (any executable file will do): passes, and LIVREC_SKIP_E2E=1 still skips.
	bin := empty + "/ffmpeg"
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := run(FFmpeg, "PATH="+empty); err != nil || !strings.Contains(out, "found "+bin) {
		t.Errorf("ffmpeg present: err %v, output:\n%s", err, out)
	}
	if out, err := run(FFmpeg, "PATH="+empty, SkipEnv+"=1"); err != nil || !strings.Contains(out, "--- SKIP") {
		t.Errorf("ffmpeg present, %s=1: err %v, output:\n%s", SkipEnv, err, out)
	}
}
