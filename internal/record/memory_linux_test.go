package record

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDefaultSyncBacklog: the machine's memory as sysinfo(2) gives it agrees with
// /proc/meminfo, and the default bound is an eighth of it within its limits.
func TestDefaultSyncBacklog(t *testing.T) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	var kib int64
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kib, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if kib <= 0 {
		t.Fatalf("no MemTotal in /proc/meminfo:\n%s", b)
	}
	mem := physicalMemory()
	if d := mem - kib<<10; d < -(kib<<10)/100 || d > (kib<<10)/100 {
		t.Fatalf("physicalMemory %d, /proc/meminfo MemTotal %d KiB", mem, kib)
	}
	want := min(max(kib<<10/8, 256<<20), 8<<30)
	if got := DefaultSyncBacklog(); got < want-(kib<<10)/100 || got > want+(kib<<10)/100 {
		t.Fatalf("DefaultSyncBacklog %d, want about %d (memory %d KiB)", got, want, kib)
	}
}
