package record

import "testing"

func TestParseStreamKey(t *testing.T) {
	k := StreamKey{"example.com", "live", "s-1"}
	if got, err := ParseStreamKey(k.String()); err != nil || got != k {
		t.Fatalf("ParseStreamKey(%q) = %+v, %v", k.String(), got, err)
	}
	for _, bad := range []string{"", "live/s", "nodomain"} {
		if _, err := ParseStreamKey(bad); err == nil {
			t.Errorf("ParseStreamKey(%q) accepted", bad)
		}
	}
}
