package service

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/jobs"
	"github.com/livrec/livrec/internal/metrics"
	"github.com/livrec/livrec/internal/vod"
)

// startVodJobs opens the job queue on the catalog's database, registers the VOD
// library's workers and hooks, and starts it: jobs left by a previous run (a crash
// included) run again.
func startVodJobs(ctx context.Context, cat *catalog.Catalog, library *vod.Library, groups *vod.TranscodeGroups,
	met *metrics.Metrics, o Options, log *slog.Logger) (*jobs.Queue, error) {
	jm := jobs.NewMetrics()
	met.Registry.MustRegister(jm.Collectors()...)
	q, err := jobs.Open(ctx, cat.DB(), jobs.Config{Concurrency: o.VodJobConcurrency, Logger: log, Metrics: jm})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	p, err := vod.NewProcessor(vod.ProcessorOptions{Library: library, Queue: q, Groups: groups,
		WorkDir: filepath.Join(o.DataDir, workDir, "vod"), CoverOffset: o.VodCoverOffset, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("vod jobs: %w", err)
	}
	h := p.Hooks()
	if extra := o.VodHooks; extra.AssetCreated != nil || extra.TaskEnded != nil {
		own := h
		h = vod.Hooks{AssetCreated: func(ctx context.Context, a *vod.Asset) {
			own.AssetCreated(ctx, a)
			if extra.AssetCreated != nil {
				extra.AssetCreated(ctx, a)
			}
		}, TaskEnded: func(ctx context.Context, id string, as []vod.Asset) {
			own.TaskEnded(ctx, id, as)
			if extra.TaskEnded != nil {
				extra.TaskEnded(ctx, id, as)
			}
		}}
	}
	library.SetHooks(h)
	if err := q.Start(ctx); err != nil {
		return nil, err
	}
	return q, nil
}
