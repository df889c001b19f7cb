//go:build !linux

package record

// physicalMemory returns 0 (unknown) where sysinfo(2) is missing.
func physicalMemory() int64 { return 0 }
