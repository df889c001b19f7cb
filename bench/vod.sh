#!/usr/bin/env bash
# bench/vod.sh — VOD building blocks on a long recording made offline by `livrec remux`:
# merge time of the task's cycle files (internal/merge: playlist, and one MP4 with
# livrec's mp4 writer) against ffmpeg -c copy on the same input (the concat demuxer over
# the cycle playlists, and one ffmpeg reading the merged playlist), and cover + sprite
# sheet time (internal/thumbnail) on the first hour.
#
#   bench/vod.sh [-H HOURS] [-c CACHE] [-k KBIT]
#
# Defaults: 6 h, cache $XDG_CACHE_HOME/livrec/bench-vod (~/.cache/...), 1200 kbit/s video.
# The input is made once per (hours, bitrate) and reused: a 60 s 1280x720 30 fps H.264
# (B-frames, GOP 2 s) + AAC 96k file, looped to HOURS with ffmpeg -stream_loop -c copy (no
# encoding of hours), remuxed with `livrec remux -cycle 3600 -slice 10` into one m3u8 file
# per hour; 6 h at the defaults is about 3.5 GB. Needs go, ffmpeg, about 4× the input size
# of free disk in the cache. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

HOURS=6 CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/livrec/bench-vod KBIT=1200
while getopts "H:c:k:h" o; do
  case $o in
    H) HOURS=$OPTARG ;; c) CACHE=$OPTARG ;; k) KBIT=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }
for t in go ffmpeg ffprobe; do command -v $t >/dev/null || { echo "need $t" >&2; exit 1; }; done

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
SRC=$CACHE/720p-${KBIT}k-60s.flv
LONG=$CACHE/720p-${KBIT}k-${HOURS}h.flv
STORE=$CACHE/store-${KBIT}k-${HOURS}h
STREAM=task
if [ ! -f "$SRC" ]; then
  log "encoding the 60 s source ($SRC)"
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=60" \
    -c:v libx264 -preset veryfast -b:v ${KBIT}k -maxrate ${KBIT}k -bufsize $((KBIT * 2))k -bf 2 -g 60 \
    -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 96k -f flv "$SRC.tmp" && mv "$SRC.tmp" "$SRC"
fi
if [ ! -f "$LONG" ]; then
  log "looping it to $HOURS h ($LONG)"
  ffmpeg -v error -y -stream_loop -1 -i "$SRC" -c copy -t $((HOURS * 3600)) -f flv "$LONG.tmp" && mv "$LONG.tmp" "$LONG"
fi
log "building livrec"
go build -o "$CACHE/livrec" ./cmd/livrec
if [ ! -f "$STORE/.done" ]; then
  rm -rf "$STORE"
  log "remuxing into hourly m3u8 cycle files ($STORE/$STREAM)"
  "$CACHE/livrec" remux -q -cycle 3600 -slice 10 -stream $STREAM "$LONG" "$STORE"
  touch "$STORE/.done"
fi
DIR=$STORE/$STREAM
mapfile -t PLAYLISTS < <(ls "$DIR"/*.m3u8 | grep -v merged | sort)
BYTES=$(du -cb "$DIR"/*.ts | tail -1 | cut -f1)
DUR=$(for p in "${PLAYLISTS[@]}"; do grep -o 'EXTINF:[0-9.]*' "$p" | cut -d: -f2; done | awk '{s+=$1} END{printf "%.3f", s}')
log "input: ${#PLAYLISTS[@]} cycle files, $DUR s, $BYTES bytes of segments"

log "livrec merge (go test -bench)"
BENCH=$(cd "$ROOT" && LIVREC_BENCH_VOD_DIR=$DIR go test -timeout 0 -run '^$' -bench 'BenchmarkMerge' -benchtime 1x -count 1 ./internal/merge/ 2>&1) ||
  { echo "$BENCH" >&2; exit 1; }
echo "$BENCH" | grep Benchmark >&2
LIVREC_PL=$(echo "$BENCH" | awk '/BenchmarkMergePlaylist/{printf "%.4f", $3/1e9}')
LIVREC_MP4=$(echo "$BENCH" | awk '/BenchmarkMergeMP4/{printf "%.2f", $3/1e9}')
LIVREC_MP4_DUR=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$DIR/merged-bench.mp4")
rm -f "$DIR/merged-bench.mp4"

OUT=$CACHE/out.mp4
LIST=$CACHE/concat.txt
for p in "${PLAYLISTS[@]}"; do echo "file '$p'"; done >"$LIST"
log "ffmpeg -f concat -c copy"
rm -f "$OUT"; t0=$(now)
ffmpeg -v error -y -f concat -safe 0 -i "$LIST" -c copy "$OUT"
FF_CONCAT=$(since "$t0")
FF_CONCAT_DUR=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$OUT")
# BenchmarkMergePlaylist leaves its last merged playlist in place for this.
MERGED=$DIR/merged-bench.m3u8
log "ffmpeg -i merged.m3u8 -c copy"
rm -f "$OUT"; t0=$(now)
ffmpeg -v error -y -i "$MERGED" -c copy "$OUT"
FF_PL=$(since "$t0")
rm -f "$OUT" "$MERGED"

log "thumbnails on the first hour"
FIRST=${PLAYLISTS[0]}
FIRST_DUR=$(grep -o 'EXTINF:[0-9.]*' "$FIRST" | cut -d: -f2 | awk '{s+=$1} END{printf "%.3f", s}')
TB=$(cd "$ROOT" && LIVREC_BENCH_THUMB_INPUT=$FIRST LIVREC_BENCH_THUMB_SECONDS=$FIRST_DUR \
  go test -timeout 0 -run '^$' -bench 'BenchmarkCover|BenchmarkSprites' -benchtime 1x -count 1 ./internal/thumbnail/ 2>&1) ||
  { echo "$TB" >&2; exit 1; }
echo "$TB" | grep Benchmark >&2

{
  echo "input: $HOURS h of 1280x720 30 fps H.264 ${KBIT}k + AAC, ${#PLAYLISTS[@]} hourly m3u8 cycle files, $DUR s, $BYTES bytes of TS segments"
  printf '%-44s %10s\n' "step" "seconds"
  printf '%-44s %10s\n' "livrec merge: playlist" "$LIVREC_PL"
  printf '%-44s %10s\n' "livrec merge: one mp4 (livrec mp4 writer)" "$LIVREC_MP4"
  printf '%-44s %10s\n' "ffmpeg -f concat (cycle playlists) -c copy mp4" "$FF_CONCAT"
  printf '%-44s %10s\n' "ffmpeg -i merged.m3u8 -c copy mp4" "$FF_PL"
  echo "output durations: livrec mp4 $LIVREC_MP4_DUR s, ffmpeg concat mp4 $FF_CONCAT_DUR s (inputs $DUR s)"
  echo "$TB" | awk '/BenchmarkCover/{printf "%-44s %10.2f\n", "cover (1 h 720p)", $3/1e9} /BenchmarkSprites/{printf "%-44s %10.2f\n", "sprites + vtt (1 h 720p, 10 s, 160 px)", $3/1e9}'
} | tee "$CACHE/results.txt"
