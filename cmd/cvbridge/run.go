package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/source"
)

func cmdRun(ctx context.Context, args []string, _ io.Writer) error {
	fs := newFlags("run")
	cfgPath := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stderr)
	slog.SetDefault(log)
	d, err := daemon.Open(ctx, cfg, func(cfg *config.Config, conn *config.Connection) (source.Source, error) {
		return buildSource(cfg, conn, log)
	}, daemon.Options{Logger: log})
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Run(ctx)
}
