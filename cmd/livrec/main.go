// Command livrec is a self-hosted live-stream recording service: it accepts RTMP pushes
// and records them (remux only) to HLS and other formats on local disk or object storage.
//
//	livrec serve [--config FILE] [--data-dir DIR] [--rtmp-addr ADDR] [--http-addr ADDR]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/config"
	"github.com/livrec/livrec/internal/service"
)

const usage = `livrec — live-stream recording service

Usage:
  livrec serve [flags]   run the RTMP ingest and HTTP API, recording pushes
  livrec remux IN OUTDIR record an FLV file offline (convert archives, benchmark)
  livrec bench [flags]   publish N looped RTMP streams (load generator)
  livrec cluster status [--config FILE] [--json]
                         the nodes sharing the catalog and the streams each owns

Run "livrec COMMAND -h" for the flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "remux":
		err = remuxCmd(os.Args[2:])
	case "bench":
		err = benchCmd(os.Args[2:])
	case "cluster":
		err = clusterCmd(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "livrec: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "livrec:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "YAML configuration file (default: none — record every push as m3u8 to local disk)")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "data directory: catalog, working files and (local storage) recordings")
	rtmpAddr := fs.String("rtmp-addr", config.DefaultRTMPAddr, "RTMP listen address")
	httpAddr := fs.String("http-addr", config.DefaultHTTPAddr, "HTTP listen address (API, files, metrics)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	// Without a file, the defaults of an empty one (and the environment: LIVREC_API_TOKEN).
	cfg, err := config.Parse(nil)
	if *cfgPath != "" {
		cfg, err = config.LoadConfig(*cfgPath)
	}
	if err != nil {
		return err
	}
	// Flags given on the command line win over the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = *dataDir
		case "rtmp-addr":
			cfg.RTMPAddr = *rtmpAddr
		case "http-addr":
			cfg.HTTPAddr = *httpAddr
		}
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return service.Run(ctx, service.Options{
		DataDir: cfg.DataDir,

		CatalogDriver: cfg.Catalog.Driver,
		CatalogDSN:    cfg.Catalog.DSN,
		NodeID:        cfg.Node.ID,
		NodeHTTPAddr:  cfg.NodeHTTPAddr(),
		NodeSecret:    cfg.Node.Secret,
		Liveness: cluster.Liveness{Interval: time.Duration(cfg.Node.HeartbeatInterval) * time.Second,
			MissedBeats: cfg.Node.MissedBeats},
		RTMPAddr: cfg.RTMPAddr,
		HTTPAddr: cfg.HTTPAddr,
		Location: cfg.Location,
		Rules:    cfg.Rules,
		Logger:   log,

		S3:                 cfg.S3,
		APITokens:          cfg.APITokens,
		PublishAuth:        cfg.PublishAuth,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		SpoolLimit:         cfg.SpoolLimitMB << 20,
		Finalizers:         cfg.Finalizers,
		MinFreeBytes:       cfg.MinFreeBytes,
		MinFreePercent:     cfg.MinFreePercent,
		AccessKeys:         cfg.AccessKeySecrets(),
		AllowDeleteFiles:   cfg.AllowDeleteFiles,
		CallbackRetention:  cfg.CallbackRetentionPeriod,

		RTMPMaxConns:          cfg.RTMPMaxConns,
		RTMPMaxConnsPerAddr:   cfg.RTMPMaxConnsPerAddr,
		RTMPPublishDeadline:   time.Duration(cfg.RTMPPublishDeadline) * time.Second,
		ReservedFDs:           cfg.ReservedFDs,
		HTTPMaxConns:          cfg.HTTPMaxConns,
		HTTPMaxConnsPerAddr:   cfg.HTTPMaxConnsPerAddr,
		AllowPrivateCallbacks: cfg.AllowPrivateCallbacks,
		CallbackAllowList:     cfg.CallbackAllowList,
		VodCallback:           cfg.Vod,
		VodTranscodeGroups:    cfg.TranscodeGroups,
		VodJobConcurrency:     cfg.VODJobConcurrency,
		VodCoverOffset:        time.Duration(cfg.VODCoverOffset * float64(time.Second)),

		TranscodeTemplates: cfg.TranscodeTemplates,
		MaxTranscoders:     cfg.MaxTranscoders,
	})
}
