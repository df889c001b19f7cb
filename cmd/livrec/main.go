package main

import (
	_ "github.com/bluenviron/gohlslib/v2/pkg/playlist"
	_ "github.com/bluenviron/gortmplib"
	_ "github.com/bluenviron/gortmplib/pkg/amf0"
	_ "github.com/bluenviron/gortmplib/pkg/handshake"
	_ "github.com/bluenviron/gortmplib/pkg/rawmessage"
	_ "github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	_ "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	_ "github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
	_ "github.com/google/uuid"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "go.yaml.in/yaml/v3"
	_ "modernc.org/sqlite"
)

func main() {}
