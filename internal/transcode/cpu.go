package transcode

import (
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// cpuSampleEvery is how often a running ffmpeg's CPU time is added to the metric, so
// that a transcoder of an hours-long stream shows up before it exits.
const cpuSampleEvery = 5 * time.Second

// cpuMeter adds one ffmpeg's CPU seconds to counter: the increments seen in
// /proc/<pid>/stat while it runs, then the rest from its rusage when it has exited.
type cpuMeter struct {
	pid     int
	counter prometheus.Counter
	mu      sync.Mutex
	counted float64 // seconds already added
}

func (m *cpuMeter) add(total float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := total - m.counted; d > 0 {
		m.counter.Add(d)
		m.counted = total
	}
}

// sample adds the running process's CPU time every period until the returned func is
// called.
func (m *cpuMeter) sample(period time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if s, ok := procCPUSeconds(m.pid); ok {
					m.add(s)
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// exited adds what the process used in total (nil: it never ran).
func (m *cpuMeter) exited(ps *os.ProcessState) {
	if ps != nil {
		m.add((ps.UserTime() + ps.SystemTime()).Seconds())
	}
}
