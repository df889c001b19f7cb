package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/livrec/livrec/internal/catalog"
	"github.com/livrec/livrec/internal/cluster"
	"github.com/livrec/livrec/internal/config"
	"github.com/livrec/livrec/internal/schema"
)

// clusterCmd is `livrec cluster status`: the nodes of the catalog and their leases, as
// GET /api/v1/cluster answers. It reads the catalog itself rather than asking a node's
// API: it is for the moments a node is dead or unreachable, and needs no API token —
// only what the nodes' own config has (the catalog's DSN).
func clusterCmd(args []string) error {
	if len(args) == 0 || args[0] != "status" {
		return errors.New("usage: livrec cluster status [--config FILE] [--data-dir DIR] [--json]")
	}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "the nodes' YAML configuration file (catalog and node.heartbeatInterval/missedBeats); without it "+
		config.CatalogDSNEnv+" or the data directory's SQLite catalog, and the default liveness (5 s × 3)")
	dataDir := fs.String("data-dir", config.DefaultDataDir, "data directory of an SQLite catalog")
	asJSON := fs.Bool("json", false, "print the status as JSON (the body of GET /api/v1/cluster)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	driver, dsn := "", os.Getenv(config.CatalogDSNEnv)
	l := cluster.Liveness{Interval: 5 * time.Second, MissedBeats: 3}
	if *cfgPath != "" {
		cfg, err := config.LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		driver, dsn = cfg.Catalog.Driver, cfg.Catalog.DSN
		l = cluster.Liveness{Interval: time.Duration(cfg.Node.HeartbeatInterval) * time.Second, MissedBeats: cfg.Node.MissedBeats}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "data-dir" {
				cfg.DataDir = *dataDir
			}
		})
		*dataDir = cfg.DataDir
	}
	if driver == "" {
		driver = schema.DriverOf(dsn)
	}
	if dsn == "" && driver != schema.Postgres {
		dsn = filepath.Join(*dataDir, "catalog.db")
		if _, err := os.Stat(dsn); err != nil {
			return fmt.Errorf("no catalog: %w (give --config, %s or --data-dir)", err, config.CatalogDSNEnv)
		}
	}
	cat, err := catalog.OpenDriver(driver, dsn)
	if err != nil {
		return err
	}
	defer cat.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := cluster.New(cat.DB()).Status(ctx, l, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return printStatus(os.Stdout, st)
}

// printStatus writes st as a table: one line per node, then the counts.
func printStatus(w io.Writer, st *cluster.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHTTP ADDR\tALIVE\tSTARTED\tLAST BEAT\tLEASES\tSTREAMS")
	for _, n := range st.Nodes {
		alive := "no"
		if n.Alive {
			alive = "yes"
		}
		beat := "-"
		if !n.BeatAt.IsZero() {
			beat = n.BeatAt.Format(time.RFC3339) + " (" + st.At.Sub(n.BeatAt).Round(time.Second).String() + " ago)"
		}
		started := "-"
		if !n.StartedAt.IsZero() {
			started = n.StartedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.ID, n.HTTPAddr, alive, started, beat, len(n.Leases), strings.Join(n.Leases, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d nodes, %d alive, %d leases (at %s)\n", st.Counts.Nodes, st.Counts.Alive, st.Counts.Leases, st.At.Format(time.RFC3339))
	return err
}
