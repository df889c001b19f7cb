#!/usr/bin/env bash
# bench/run.sh — record N streams with livrec and with nginx-rtmp on loopback, same
# input, same N, same duration, same load generator (`livrec bench`), one server at a
# time; then time `livrec remux` against `ffmpeg -c copy` on the same file. Prints a table
# with livrec/nginx ratios and writes it (and the raw data) to the output directory.
#
#   bench/run.sh [-n STREAMS] [-d SECONDS] [-f IN.flv] [-r REMUX_RUNS] [-o OUTDIR] [-s SLICE]
#                [-m "FORMATS"]
#
# Defaults: 50 streams, 60 s, a generated 640x360 30 fps H.264 (B-frames) + AAC file of
# 60 s (~1.2 Mbit/s), 5 remux runs, OUTDIR bench/out-YYYYmmdd-HHMMSS, 10 s segments,
# formats "flv m3u8". Each format is a run of its own against a fresh server: livrec
# recording that format only, then nginx-rtmp recording it (flv: record all; m3u8: hls
# on, cleanup off). mp4 and cmaf can be listed too (livrec only: no nginx-rtmp peer).
# Needs go, ffmpeg/ffprobe, curl; installs nginx + libnginx-mod-rtmp with apt-get if
# missing. Listens on 127.0.0.1 only. Not run in CI.
#
# Measured, per server:
#   CPU s per recorded stream-minute  utime+stime from /proc/PID/stat (nginx: master +
#                                     workers), from before the load to the final files
#   machine CPU s per stream-minute   the same span, busy time of the whole machine
#                                     (/proc/stat) minus the load generator's CPU: counts
#                                     the kernel's writeback threads, which no process is
#                                     charged for (nginx never fsyncs; livrec syncs its
#                                     files, so the kernel work shows in its own CPU);
#                                     includes the script's own polling and background
#                                     noise, so only meaningful with many streams
#   RSS peak / steady per stream      VmRSS sampled every second during the load (nginx:
#                                     summed over the processes), minus the idle RSS, / N;
#                                     steady = median of the second half of the load
#   frames lost                       video frames sent (livrec bench summary) minus video
#                                     packets in the output files (ffprobe -count_packets)
#   max lag behind real time          the load generator's largest write or close delay
#                                     (a server not keeping up with real time shows here)
#   stream end → final files          from the end of the load until all N files are final
#                                     (livrec: they are stored when the stitch window,
#                                     delayTime 15 s, expires; nginx: the flv is final when
#                                     the publisher disconnects, the HLS playlist is live
#                                     and never ended)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N=50 DUR=60 IN= RUNS=5 OUT= SLICE=10 FORMATS="flv m3u8" WINDOW=15
while getopts "n:d:f:r:o:s:m:h" o; do
  case $o in
    n) N=$OPTARG ;; d) DUR=$OPTARG ;; f) IN=$OPTARG ;; r) RUNS=$OPTARG ;; o) OUT=$OPTARG ;; s) SLICE=$OPTARG ;;
    m) FORMATS=$OPTARG ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
OUT=${OUT:-$ROOT/bench/out-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LIVREC_RTMP=127.0.0.1:19351 LIVREC_HTTP=127.0.0.1:18081 NGINX_PORT=19352
TICK=$(getconf CLK_TCK)
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# --- prerequisites -------------------------------------------------------------------
for t in go ffmpeg ffprobe curl; do command -v $t >/dev/null || { echo "need $t" >&2; exit 1; }; done
NGINX_MOD=/usr/lib/nginx/modules/ngx_rtmp_module.so
if ! command -v nginx >/dev/null || [ ! -f $NGINX_MOD ]; then
  log "installing nginx + libnginx-mod-rtmp"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nginx libnginx-mod-rtmp >/dev/null
fi
log "building livrec"
go build -o "$OUT/livrec" ./cmd/livrec
LIVREC=$OUT/livrec
if [ -z "$IN" ]; then
  IN=$OUT/input.flv
  log "encoding the input ($IN)"
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=60" \
    -c:v libx264 -preset veryfast -b:v 1100k -maxrate 1100k -bufsize 2200k -bf 2 -g 60 -pix_fmt yuv420p \
    -c:a aac -b:a 96k -f flv "$IN"
fi

# --- helpers -------------------------------------------------------------------------
# cpu_ticks PID...: utime+stime of the processes (fields 14, 15 of /proc/PID/stat).
cpu_ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
# machine_ticks: busy time of the whole machine (user+nice+system+irq+softirq of /proc/stat):
# it includes the kernel threads that write dirty pages back, which no process is charged.
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat; }
rss_kib() { local t=0 p; for p in "$@"; do [ -r /proc/$p/status ] && t=$((t + $(awk '/^VmRSS/{print $2}' /proc/$p/status))); done; echo $t; }
nginx_pids() { local m; m=$(cat "$OUT/nginx/nginx.pid" 2>/dev/null) || return 0; echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
# video_packets FILE: video packets counted by ffprobe (HLS lists a stream per program too).
video_packets() {
  local probe=(timeout 300 ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0)
  if [[ $1 == *.m3u8 ]] && ! grep -q '^#EXT-X-ENDLIST' "$1"; then
    # A live playlist (nginx-rtmp): ffprobe would wait for it to grow; read its segments.
    local d; d=$(dirname "$1")
    grep -v '^#' "$1" | grep . | while read -r seg; do cat "$d/$seg"; done | "${probe[@]}" -f mpegts -i pipe:0 2>/dev/null
  else
    "${probe[@]}" "$1" 2>/dev/null
  fi | awk 'NF{print $1+0; exit}'
}
sum_packets() { local t=0 f n; for f in "$@"; do n=$(video_packets "$f"); t=$((t + ${n:-0})); done; echo $t; }
json_num() { grep -o "\"$2\": *[0-9.e+-]*" "$1" | head -1 | sed 's/.*: *//'; }

# sample_rss OUTFILE PIDS-COMMAND: samples RSS every second until killed.
sample_rss() { while :; do rss_kib $($2) >>"$1"; sleep 1; done; }

# run_load NAME URL PIDS-COMMAND: the load against a running server; sets the globals
# CPU0 (ticks before), LOAD_END (time), and writes $OUT/NAME-bench.json, NAME-rss.txt.
run_load() {
  local name=$1 url=$2 pids=$3
  rss_kib $($pids) >"$OUT/$name-idle-rss.txt"
  CPU0=$(cpu_ticks $($pids))
  MACHINE0=$(machine_ticks)
  : >"$OUT/$name-rss.txt"
  sample_rss "$OUT/$name-rss.txt" "$pids" & local sampler=$!
  log "$name: $N streams for ${DUR}s"
  "$LIVREC" bench --url "$url" --streams "$N" --duration "${DUR}s" --file "$IN" --jitter 2s --seed 1 \
    --per-stream=false --json "$OUT/$name-bench.json" >/dev/null 2>"$OUT/$name-bench.log" || log "$name: load generator reported errors"
  LOAD_END=$(now)
  kill $sampler; wait $sampler 2>/dev/null || true
}

# summarize NAME CPU_TICKS MACHINE_TICKS FINAL_SECONDS OUTPUT_FILES...: writes $OUT/NAME.env.
summarize() {
  local name=$1 ticks=$2 mticks=$3 final=$4; shift 4
  local sent idle n peak steady got
  sent=$(json_num "$OUT/$name-bench.json" videoFrames)
  idle=$(cat "$OUT/$name-idle-rss.txt")
  n=$(wc -l <"$OUT/$name-rss.txt")
  peak=$(sort -n "$OUT/$name-rss.txt" | tail -1)
  steady=$(tail -n $(( (n + 1) / 2 )) "$OUT/$name-rss.txt" | median)
  got=$(sum_packets "$@")
  {
    echo "files=$#"
    echo "cpu_s=$(awk -v t="$ticks" -v k="$TICK" 'BEGIN{printf "%.2f", t/k}')"
    echo "cpu_per_stream_min=$(awk -v t="$ticks" -v k="$TICK" -v n="$N" -v d="$DUR" 'BEGIN{printf "%.4f", t/k/(n*d/60)}')"
    echo "machine_cpu_per_stream_min=$(awk -v t="$mticks" -v k="$TICK" -v g="$(json_num "$OUT/$name-bench.json" cpuSeconds)" -v n="$N" -v d="$DUR" 'BEGIN{printf "%.4f", (t/k-g)/(n*d/60)}')"
    echo "rss_peak_per_stream_kib=$(awk -v p="$peak" -v i="$idle" -v n="$N" 'BEGIN{printf "%.0f", (p-i)/n}')"
    echo "rss_steady_per_stream_kib=$(awk -v p="$steady" -v i="$idle" -v n="$N" 'BEGIN{printf "%.0f", (p-i)/n}')"
    echo "rss_peak_total_mib=$(awk -v p="$peak" 'BEGIN{printf "%.1f", p/1024}')"
    echo "frames_sent=$sent"
    echo "lost=$((sent - got))"
    echo "final_s=$final"
    echo "gen_cpu_pct=$(json_num "$OUT/$name-bench.json" cpuPercent)"
    echo "max_lag_s=$(json_num "$OUT/$name-bench.json" maxLagSeconds | xargs printf '%.2f')"
  } >"$OUT/$name.env"
}

# wait_files DIR PATTERN COUNT TIMEOUT: until COUNT files match; prints the seconds waited.
wait_files() {
  local t0; t0=$(now)
  while [ "$(find "$1" -name "$2" 2>/dev/null | wc -l)" -lt "$3" ]; do
    if awk -v a="$(now)" -v b="$t0" -v m="$4" 'BEGIN{exit !(a-b>m)}'; then log "timeout waiting for $3 $2 in $1"; break; fi
    sleep 0.2
  done
}

# The file a recording of each format is complete with (for counting and waiting).
final_pattern() { case $1 in m3u8|cmaf) echo '*.m3u8' ;; *) echo "*.$1" ;; esac; }

# --- livrec --------------------------------------------------------------------------
# bench_livrec FORMAT: a fresh livrec recording FORMAT only; writes $OUT/livrec-FORMAT.env.
bench_livrec() {
  local fmt=$1 name=livrec-$1 ld=$OUT/livrec-$1-data pid
  rm -rf "$ld"; mkdir -p "$ld"
  cat >"$OUT/$name.yaml" <<YAML
rules:
  - domainName: "*"
    appName: "*"
    streamName: "*"
    delayTime: $WINDOW
    recordFormats:
      - format: $fmt
$(case $fmt in m3u8|cmaf) echo "        sliceDuration: $SLICE" ;; esac)
YAML
  "$LIVREC" serve --config "$OUT/$name.yaml" --data-dir "$ld" --rtmp-addr $LIVREC_RTMP --http-addr $LIVREC_HTTP \
    --log-level warn >"$OUT/$name.log" 2>&1 &
  pid=$!
  PIDS_TO_KILL="$PIDS_TO_KILL $pid"
  until curl -sf "http://$LIVREC_HTTP/healthz" >/dev/null; do
    kill -0 $pid 2>/dev/null || { cat "$OUT/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  run_load "$name" "rtmp://$LIVREC_RTMP/bench" "echo $pid"
  # The files are generated when the stitch window (delayTime) expires after the push ended.
  wait_files "$ld/files" "$(final_pattern "$fmt")" "$N" $((WINDOW + 120))
  local final ticks mticks
  final=$(awk -v a="$(now)" -v b="$LOAD_END" 'BEGIN{printf "%.1f", a-b}')
  ticks=$(( $(cpu_ticks $pid) - CPU0 ))
  mticks=$(( $(machine_ticks) - MACHINE0 ))
  kill -TERM $pid; wait $pid || true
  local files
  mapfile -t files < <(find "$ld/files" -name "$(final_pattern "$fmt")" | sort)
  summarize "$name" "$ticks" "$mticks" "$final" "${files[@]}"
  rm -rf "$ld"
}

# --- nginx-rtmp ----------------------------------------------------------------------
# bench_nginx FORMAT: a fresh nginx-rtmp recording flv (record all) or m3u8 (hls on,
# cleanup off); writes $OUT/nginx-FORMAT.env.
bench_nginx() {
  local fmt=$1 name=nginx-$1 nd=$OUT/nginx npid rec
  rm -rf "$nd"; mkdir -p "$nd/flv" "$nd/hls" "$nd/logs"
  chmod -R a+rwx "$nd"
  if [ "$fmt" = flv ]; then
    rec="record all; record_path $nd/flv;"
  else
    rec="hls on; hls_path $nd/hls; hls_nested on; hls_fragment ${SLICE}s; hls_playlist_length 24h; hls_cleanup off;"
  fi
  cat >"$nd/nginx.conf" <<CONF
load_module $NGINX_MOD;
worker_processes auto;
pid $nd/nginx.pid;
error_log $nd/logs/error.log warn;
events { worker_connections 16384; }
rtmp {
  server {
    listen 127.0.0.1:$NGINX_PORT;
    chunk_size 4096;
    application bench { live on; $rec }
  }
}
CONF
  nginx -p "$nd" -c "$nd/nginx.conf" -g 'daemon off;' 2>"$nd/logs/stderr.log" &
  npid=$!
  for _ in $(seq 50); do [ -f "$nd/nginx.pid" ] && [ -n "$(pgrep -P "$(cat "$nd/nginx.pid")")" ] && break; sleep 0.1; done
  sleep 0.5
  PIDS_TO_KILL="$PIDS_TO_KILL $(cat "$nd/nginx.pid")"
  run_load "$name" "rtmp://127.0.0.1:$NGINX_PORT/bench" nginx_pids
  # nginx closes the flv when the publisher disconnects; wait for the connections to go.
  while ss -Htn state established "( sport = :$NGINX_PORT )" 2>/dev/null | grep -q .; do sleep 0.1; done
  [ "$fmt" = flv ] && wait_files "$nd/flv" "*.flv" "$N" 30
  local final ticks mticks files
  final=$(awk -v a="$(now)" -v b="$LOAD_END" 'BEGIN{printf "%.1f", a-b}')
  ticks=$(( $(cpu_ticks $(nginx_pids)) - CPU0 ))
  mticks=$(( $(machine_ticks) - MACHINE0 ))
  kill -QUIT "$(cat "$nd/nginx.pid")"; wait $npid || true
  mapfile -t files < <(find "$nd/$([ "$fmt" = flv ] && echo flv || echo hls)" -name "$(final_pattern "$fmt")" | sort)
  summarize "$name" "$ticks" "$mticks" "$final" "${files[@]}"
  rm -rf "$nd"
}

PIDS_TO_KILL=
trap 'for p in $PIDS_TO_KILL; do kill $p 2>/dev/null || true; done' EXIT
for fmt in $FORMATS; do
  bench_livrec "$fmt"
  case $fmt in flv|m3u8) bench_nginx "$fmt" ;; esac
done

# --- remux vs ffmpeg -c copy ----------------------------------------------------------
RX=$OUT/remux
time_cmd() { local t0; t0=$(now); "$@" >/dev/null 2>&1 || log "failed: $*"; awk -v a="$(now)" -v b="$t0" 'BEGIN{printf "%.4f\n", a-b}'; }
for fmt in flv m3u8; do
  : >"$OUT/remux-livrec-$fmt.txt"; : >"$OUT/remux-ffmpeg-$fmt.txt"
  for i in $(seq "$RUNS"); do
    rm -rf "$RX"; mkdir -p "$RX"
    time_cmd "$LIVREC" remux -q --format $fmt --slice "$SLICE" "$IN" "$RX" >>"$OUT/remux-livrec-$fmt.txt"
    rm -rf "$RX"; mkdir -p "$RX"
    if [ $fmt = flv ]; then
      time_cmd ffmpeg -v error -y -i "$IN" -c copy -f flv "$RX/out.flv" >>"$OUT/remux-ffmpeg-$fmt.txt"
    else
      time_cmd ffmpeg -v error -y -i "$IN" -c copy -f hls -hls_time "$SLICE" -hls_list_size 0 "$RX/out.m3u8" >>"$OUT/remux-ffmpeg-$fmt.txt"
    fi
  done
done
rm -rf "$RX"

# --- table ---------------------------------------------------------------------------
get() { [ -f "$OUT/$1.env" ] && grep "^$2=" "$OUT/$1.env" | cut -d= -f2; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == "") print "n/a"; else if (b+0 == 0) print (a+0 == 0 ? "=" : "n/a"); else printf "%.2f", a/b }'; }
row() { printf '%-46s %12s %12s %8s\n' "$1" "$2" "${3:--}" "$(ratio "$2" "$3")"; }
row0() { printf '%-46s %12s %12s\n' "$1" "$2" "${3:--}"; } # no ratio
SIZE=$(stat -c %s "$IN")
{
  echo "livrec vs nginx-rtmp — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r)"
  echo "input $IN ($SIZE bytes); $N streams × ${DUR}s real time, loopback, one format per run; ${SLICE}s segments"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(dpkg-query -W -f='libnginx-mod-rtmp ${Version}' libnginx-mod-rtmp 2>/dev/null); $(go env GOVERSION)"
  echo
  printf '%-46s %12s %12s %8s\n' metric livrec nginx-rtmp ratio
  for fmt in $FORMATS; do
    l=livrec-$fmt n=nginx-$fmt
    row "[$fmt] CPU s per recorded stream-minute" "$(get $l cpu_per_stream_min)" "$(get $n cpu_per_stream_min)"
    row "[$fmt] machine CPU s per stream-minute"  "$(get $l machine_cpu_per_stream_min)" "$(get $n machine_cpu_per_stream_min)"
    row "[$fmt] RSS steady per stream (KiB)"      "$(get $l rss_steady_per_stream_kib)" "$(get $n rss_steady_per_stream_kib)"
    row "[$fmt] RSS peak per stream (KiB)"        "$(get $l rss_peak_per_stream_kib)" "$(get $n rss_peak_per_stream_kib)"
    row "[$fmt] video frames sent"                "$(get $l frames_sent)" "$(get $n frames_sent)"
    row "[$fmt] video frames lost"                "$(get $l lost)" "$(get $n lost)"
    row0 "[$fmt] files"                            "$(get $l files)" "$(get $n files)"
    row0 "[$fmt] stream end -> final files (s)"    "$(get $l final_s)" "$(get $n final_s)"
    row0 "[$fmt] max lag behind real time (s)"     "$(get $l max_lag_s)" "$(get $n max_lag_s)"
    row "[$fmt] load generator CPU (% of a core)" "$(get $l gen_cpu_pct | xargs printf '%.1f')" "$(get $n gen_cpu_pct | xargs -r printf '%.1f')"
  done
  for fmt in flv m3u8; do
    row "remux to $fmt, median of $RUNS (s) vs ffmpeg" "$(median <"$OUT/remux-livrec-$fmt.txt")" "$(median <"$OUT/remux-ffmpeg-$fmt.txt")"
  done
  echo
  echo "(ratio = livrec / peer; the remux rows compare with ffmpeg -c copy, not nginx. livrec's files are final when"
  echo " the stitch window (delayTime ${WINDOW} s, the minimum) has expired after the stream ended; nginx-rtmp closes its"
  echo " flv at once and leaves HLS playlists live (no ENDLIST). mp4/cmaf have no nginx-rtmp peer. Raw data: $OUT)"
} | tee "$OUT/results.txt"
