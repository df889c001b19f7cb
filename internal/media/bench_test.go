package media

import "testing"

// BenchmarkDemuxer measures demuxing (and timestamp repair) over the H.264+AAC fixture.
// MB/s is tag body bytes; allocs/op is per fixture pass (see the tags/op metric).
func BenchmarkDemuxer(b *testing.B) {
	tags := readFixture(b, "h264_aac.flv")
	var size int64
	for _, t := range tags {
		size += int64(len(t.Body))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var rep TimestampRepair
		d := &Demuxer{OnAccessUnit: rep.Fix}
		for _, t := range tags {
			_ = d.WriteTag(t)
		}
		d.Flush()
	}
	b.ReportMetric(float64(len(tags)), "tags/op")
}
