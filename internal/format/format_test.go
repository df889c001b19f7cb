package format

import (
	"testing"
	"time"
)

// TestResultSeconds: every format's duration reaches the catalog with the same
// millisecond precision.
func TestResultSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want float64
	}{
		{20005986394 * time.Nanosecond, 20.006}, // an mp4 of 44.1 kHz audio
		{20006 * time.Millisecond, 20.006},      // flv
		{20004499999 * time.Nanosecond, 20.004},
		{0, 0},
	} {
		if got := (Result{Duration: c.d}).Seconds(); got != c.want {
			t.Errorf("Result{Duration: %v}.Seconds() = %v, want %v", c.d, got, c.want)
		}
	}
}
