//go:build linux || darwin || freebsd

package api

import "syscall"

func diskStatus(dir string) DiskStatus {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return DiskStatus{Path: dir, Error: err.Error()}
	}
	bs := uint64(fs.Bsize)
	return DiskStatus{Path: dir, FreeBytes: uint64(fs.Bavail) * bs, TotalBytes: uint64(fs.Blocks) * bs}
}
