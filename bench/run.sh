#!/usr/bin/env bash
# bench/run.sh — livrec against nginx on loopback, one server at a time, same input and
# same load generator for both; prints a table with livrec/nginx ratios and writes it
# (and the raw data) to the output directory. Scenarios (-S, default all four):
#   record  N streams of the input for D seconds into each format of -m, with livrec and
#           with nginx-rtmp (flv: record all; m3u8: hls on, cleanup off; mp4 and cmaf have
#           no nginx-rtmp peer)
#   idle    I publishers of an audio-only input (AAC, -a kbit/s) for D seconds, recorded to
#           flv by livrec and by nginx-rtmp (record all): CPU and RSS per connection
#   serve   K finished HLS recordings (the input remuxed) served over HTTP to C concurrent
#           wrk clients for T seconds by livrec's /files/ and by Debian's nginx (the same
#           files, plain root): every other segment request is a Range request
#   remux   `livrec remux` against `ffmpeg -c copy` on the input, median of R runs
#
#   bench/run.sh [-S "record idle serve remux"] [-n STREAMS] [-d SECONDS] [-f IN.flv]
#                [-m "FORMATS"] [-s SLICE] [-i IDLE_CONNS] [-a AUDIO_KBITS]
#                [-k RECORDINGS] [-c HTTP_CLIENTS] [-t HTTP_SECONDS] [-r REMUX_RUNS] [-o OUTDIR]
#                [-b LIVREC_BINARY] [-R RECORD_ROUNDS]
#
# -R runs the record scenario R times per format, livrec and nginx-rtmp taking turns at
# going first, and reports each metric's median (frames lost: the largest; files: the
# fewest). Before the first record run, a file as large as one run writes is written and
# deleted: on a VM, the first writes into memory the guest has not touched since it
# booted cost the kernel about twice the CPU (seen: the same 1000-stream flv run at 0.065
# CPU s per stream-minute as the first run of a boot, 0.033 as the third), which went to
# whichever server ran first.
#
# Environment: BENCH_PORT, the first of four loopback ports (default 19351).
# Defaults: 50 streams, 60 s, a generated 640x360 30 fps H.264 (B-frames) + AAC file of
# 60 s (~1.2 Mbit/s), formats "flv m3u8", 10 s segments; idle: 3000 connections of 64
# kbit/s; serve: 100 recordings, 500 clients, 20 s; 5 remux runs; OUTDIR
# bench/out-YYYYmmdd-HHMMSS. Needs go, ffmpeg/ffprobe, curl; installs nginx,
# libnginx-mod-rtmp and wrk with apt-get if missing. Listens on 127.0.0.1 only. Not run in CI.
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

N=50 DUR=60 IN= RUNS=5 ROUNDS=1 OUT= SLICE=10 FORMATS="flv m3u8" WINDOW=15
SCENARIOS="record idle serve remux" IDLE=3000 AKBIT=64 RECS=100 CLIENTS=500 HTTPDUR=20
BIN=
while getopts "S:n:d:f:r:R:o:s:m:i:a:k:c:t:b:h" o; do
  case $o in
    S) SCENARIOS=$OPTARG ;; b) BIN=$OPTARG ;;
    n) N=$OPTARG ;; d) DUR=$OPTARG ;; f) IN=$OPTARG ;; r) RUNS=$OPTARG ;; R) ROUNDS=$OPTARG ;; o) OUT=$OPTARG ;; s) SLICE=$OPTARG ;;
    m) FORMATS=$OPTARG ;;
    i) IDLE=$OPTARG ;; a) AKBIT=$OPTARG ;; k) RECS=$OPTARG ;; c) CLIENTS=$OPTARG ;; t) HTTPDUR=$OPTARG ;;
    *) sed -n '2,35p' "$0"; exit 2 ;;
  esac
done
has() { [[ " $SCENARIOS " == *" $1 "* ]]; }
has record || FORMATS=
OUT=${OUT:-$ROOT/bench/out-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg) # the machine may be shared: say how busy it was
# Ports: BENCH_PORT and the three above it (default 19351): a second run on the same
# machine needs other ones, and a port already taken is an error (the load would go to
# whatever listens there).
BP=${BENCH_PORT:-19351}
LIVREC_RTMP=127.0.0.1:$BP LIVREC_HTTP=127.0.0.1:$((BP + 1)) NGINX_PORT=$((BP + 2)) NGINX_HTTP=$((BP + 3))
for p in $BP $((BP + 1)) $((BP + 2)) $((BP + 3)); do
  if ss -Hltn "( sport = :$p )" 2>/dev/null | grep -q .; then
    echo "port $p is in use (another bench run?): set BENCH_PORT to a free range" >&2; exit 1
  fi
done
TICK=$(getconf CLK_TCK)
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# --- prerequisites -------------------------------------------------------------------
for t in go ffmpeg ffprobe curl; do command -v $t >/dev/null || { echo "need $t" >&2; exit 1; }; done
NGINX_MOD=/usr/lib/nginx/modules/ngx_rtmp_module.so
if ! command -v nginx >/dev/null || [ ! -f $NGINX_MOD ] || { has serve && ! command -v wrk >/dev/null; }; then
  log "installing nginx + libnginx-mod-rtmp + wrk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nginx libnginx-mod-rtmp wrk >/dev/null
fi
if [ -n "$BIN" ]; then
  LIVREC=$(realpath "$BIN") # a livrec built elsewhere (an older commit, to compare)
else
  log "building livrec"
  go build -o "$OUT/livrec" ./cmd/livrec
  LIVREC=$OUT/livrec
fi
if [ -z "$IN" ]; then
  IN=$OUT/input.flv
  log "encoding the input ($IN)"
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=60" \
    -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=60" \
    -c:v libx264 -preset veryfast -b:v 1100k -maxrate 1100k -bufsize 2200k -bf 2 -g 60 -pix_fmt yuv420p \
    -c:a aac -b:a 96k -f flv "$IN"
fi
if has idle; then
  AIN=$OUT/audio.flv
  ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=60" -c:a aac -b:a ${AKBIT}k -f flv "$AIN"
fi
# The load of a run: streams and input (the idle scenario sets its own).
LN=$N LIN=$IN

# --- helpers -------------------------------------------------------------------------
# cpu_ticks PID...: utime+stime of the processes (fields 14, 15 of /proc/PID/stat).
cpu_ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
# machine_ticks: busy time of the whole machine (user+nice+system+irq+softirq of /proc/stat):
# it includes the kernel threads that write dirty pages back, which no process is charged.
machine_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat; }
rss_kib() { local t=0 p; for p in "$@"; do [ -r /proc/$p/status ] && t=$((t + $(awk '/^VmRSS/{print $2}' /proc/$p/status))); done; echo $t; }
nginx_pids_in() { local m; m=$(cat "$1/nginx.pid" 2>/dev/null) || return 0; echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }
nginx_pids() { nginx_pids_in "$OUT/nginx"; }
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
  log "$name: $LN streams for ${DUR}s"
  "$LIVREC" bench --url "$url" --streams "$LN" --duration "${DUR}s" --file "$LIN" --jitter 2s --seed 1 \
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
  got=$sent
  [ "$LIN" = "$IN" ] && got=$(sum_packets "$@") # the idle scenario's input has no video
  {
    echo "files=$#"
    echo "cpu_s=$(awk -v t="$ticks" -v k="$TICK" 'BEGIN{printf "%.2f", t/k}')"
    echo "cpu_per_stream_min=$(awk -v t="$ticks" -v k="$TICK" -v n="$LN" -v d="$DUR" 'BEGIN{printf "%.4f", t/k/(n*d/60)}')"
    echo "machine_cpu_per_stream_min=$(awk -v t="$mticks" -v k="$TICK" -v g="$(json_num "$OUT/$name-bench.json" cpuSeconds)" -v n="$LN" -v d="$DUR" 'BEGIN{printf "%.4f", (t/k-g)/(n*d/60)}')"
    echo "rss_peak_per_stream_kib=$(awk -v p="$peak" -v i="$idle" -v n="$LN" 'BEGIN{printf "%.0f", (p-i)/n}')"
    echo "rss_steady_per_stream_kib=$(awk -v p="$steady" -v i="$idle" -v n="$LN" 'BEGIN{printf "%.0f", (p-i)/n}')"
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
# bench_livrec FORMAT [NAME]: a fresh livrec recording FORMAT only; writes $OUT/NAME.env
# (NAME: livrec-FORMAT).
bench_livrec() {
  local fmt=$1 name=${2:-livrec-$1} ld=$OUT/livrec-$1-data pid
  rm -rf "$ld"; mkdir -p "$ld"
  # The load comes from one address: the per-address cap must let it in.
  cat >"$OUT/$name.yaml" <<YAML
rtmpMaxConns: $((LN + 100))
rtmpMaxConnsPerAddr: $((LN + 100))
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
  wait_files "$ld/files" "$(final_pattern "$fmt")" "$LN" $((WINDOW + 120))
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

# nginx_head DIR: the main and events sections of an nginx configuration kept in DIR.
nginx_head() {
  cat <<CONF
worker_processes auto;
worker_rlimit_nofile 65536;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 16384; }
CONF
}

# --- nginx-rtmp ----------------------------------------------------------------------
# bench_nginx FORMAT [NAME]: a fresh nginx-rtmp recording flv (record all) or m3u8 (hls on,
# cleanup off); writes $OUT/NAME.env (NAME: nginx-FORMAT).
bench_nginx() {
  local fmt=$1 name=${2:-nginx-$1} nd=$OUT/nginx npid rec
  rm -rf "$nd"; mkdir -p "$nd/flv" "$nd/hls" "$nd/logs"
  chmod -R a+rwx "$nd"
  if [ "$fmt" = flv ]; then
    rec="record all; record_path $nd/flv;"
  else
    rec="hls on; hls_path $nd/hls; hls_nested on; hls_fragment ${SLICE}s; hls_playlist_length 24h; hls_cleanup off;"
  fi
  { echo "load_module $NGINX_MOD;"; nginx_head "$nd"; } >"$nd/nginx.conf"
  cat >>"$nd/nginx.conf" <<CONF
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
  [ "$fmt" = flv ] && wait_files "$nd/flv" "*.flv" "$LN" 30
  local final ticks mticks files
  final=$(awk -v a="$(now)" -v b="$LOAD_END" 'BEGIN{printf "%.1f", a-b}')
  ticks=$(( $(cpu_ticks $(nginx_pids)) - CPU0 ))
  mticks=$(( $(machine_ticks) - MACHINE0 ))
  stop_nginx "$nd" $npid
  mapfile -t files < <(find "$nd/$([ "$fmt" = flv ] && echo flv || echo hls)" -name "$(final_pattern "$fmt")" | sort)
  summarize "$name" "$ticks" "$mticks" "$final" "${files[@]}"
  rm -rf "$nd"
}

# stop_nginx DIR PID: a graceful stop, and then no worker left: a worker still draining
# connections keeps the port, and the next nginx of the run could not bind it.
stop_nginx() {
  local pids; pids=$(nginx_pids_in "$1")
  kill -QUIT "$(cat "$1/nginx.pid")"; wait "$2" || true
  local p alive
  for _ in $(seq 100); do
    alive=
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

PIDS_TO_KILL=
trap 'for p in $PIDS_TO_KILL; do kill $p 2>/dev/null || true; done' EXIT
# warm_memory: write and delete a file as large as one record run writes (the input's
# rate × N × D, at most half the available memory), see -R.
warm_memory() {
  local dur mb avail
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$IN" 2>/dev/null | cut -d. -f1)
  [ -n "$dur" ] && [ "$dur" -gt 0 ] || dur=60
  avail=$(awk '/^MemAvailable/{print int($2/1024)}' /proc/meminfo)
  mb=$(( $(stat -c %s "$IN") / dur * LN * DUR * 11 / 10 / 1048576 ))
  mb=$(( mb < avail / 2 ? mb : avail / 2 ))
  log "warming memory: writing and deleting ${mb} MiB"
  dd if=/dev/zero of="$OUT/warm" bs=1M count="$mb" status=none
  rm -f "$OUT/warm"
}

# merge_rounds NAME: NAME.env from NAME-r1.env ... NAME-rROUNDS.env (see -R).
merge_rounds() {
  local name=$1 key
  for key in $(cut -d= -f1 "$OUT/$name-r1.env"); do
    printf '%s=' "$key"
    for r in $(seq "$ROUNDS"); do grep "^$key=" "$OUT/$name-r$r.env" | cut -d= -f2; done | case $key in
      lost) sort -n | tail -1 ;;
      files) sort -n | head -1 ;;
      *) median ;;
    esac
  done >"$OUT/$name.env"
}

[ -z "$FORMATS" ] || warm_memory
for fmt in $FORMATS; do
  peer=; case $fmt in flv|m3u8) peer=1 ;; esac
  for r in $(seq "$ROUNDS"); do
    if [ -n "$peer" ] && [ $((r % 2)) = 0 ]; then
      bench_nginx "$fmt" "nginx-$fmt-r$r"; bench_livrec "$fmt" "livrec-$fmt-r$r"
    else
      bench_livrec "$fmt" "livrec-$fmt-r$r"; [ -z "$peer" ] || bench_nginx "$fmt" "nginx-$fmt-r$r"
    fi
  done
  merge_rounds "livrec-$fmt"; [ -z "$peer" ] || merge_rounds "nginx-$fmt"
done

# --- idle-ish publishers ----------------------------------------------------------------
if has idle; then
  LN=$IDLE LIN=$AIN
  bench_livrec flv livrec-idle
  bench_nginx flv nginx-idle
  LN=$N LIN=$IN
fi

# --- serving finished recordings ------------------------------------------------------
# wrk_run NAME BASEURL: C clients for T s over the URLs of $OUT/serve-paths.txt, every
# other request with a Range header; writes $OUT/NAME.env (requests/s, MB/s, errors).
wrk_run() {
  local name=$1 base=$2
  cat >"$OUT/serve.lua" <<LUA
local paths, i = {}, 0
for l in io.lines("$OUT/serve-paths.txt") do paths[#paths + 1] = l end
request = function()
  i = i + 1
  local p = paths[(i * 7919) % #paths + 1]
  if i % 2 == 0 and p:sub(-3) == ".ts" then return wrk.format("GET", "$base" .. p, {Range = "bytes=1000-66535"}) end
  return wrk.format("GET", "$base" .. p)
end
done = function(summary, latency, requests)
  io.write(string.format("requests=%d\nbytes=%d\nerrors=%d\nseconds=%.3f\nlatency_p99_ms=%.1f\n",
    summary.requests, summary.bytes, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout, summary.duration / 1e6, latency:percentile(99) / 1e3))
end
LUA
  local pids=$3 c0
  c0=$(cpu_ticks $($pids))
  log "$name: $CLIENTS HTTP clients for ${HTTPDUR}s"
  wrk -t 2 -c "$CLIENTS" -d "${HTTPDUR}s" --timeout 10s -s "$OUT/serve.lua" "$base/" >"$OUT/$name-wrk.txt" 2>&1 || log "$name: wrk failed"
  local ticks=$(( $(cpu_ticks $($pids)) - c0 ))
  sed -n '/^requests=/,$p' "$OUT/$name-wrk.txt" >"$OUT/$name.env"
  # shellcheck disable=SC1090
  . "$OUT/$name.env"
  {
    echo "rps=$(awk -v r="$requests" -v s="$seconds" 'BEGIN{printf "%.0f", r/s}')"
    echo "mbps=$(awk -v b="$bytes" -v s="$seconds" 'BEGIN{printf "%.1f", b/s/1e6}')"
    echo "cpu_per_kreq=$(awk -v t="$ticks" -v k="$TICK" -v r="$requests" 'BEGIN{printf "%.3f", r ? t/k/(r/1000) : 0}')"
  } >>"$OUT/$name.env"
}
if has serve; then
  sd=$OUT/serve-data
  rm -rf "$sd"; mkdir -p "$sd/files"
  "$LIVREC" remux -q --format m3u8 --slice "$SLICE" "$IN" "$sd/one" >/dev/null
  one=$(dirname "$(find "$sd/one" -name '*.m3u8' | head -1)")
  for k in $(seq "$RECS"); do cp -r "$one" "$sd/files/rec$k"; done
  rm -rf "$sd/one"
  (cd "$sd/files" && find . -type f | sed 's|^\./|/|' | sort) >"$OUT/serve-paths.txt"
  # livrec: /files/ of its local store (the data directory's files/).
  # The clients come from one address: the per-address cap must let them in.
  cat >"$OUT/livrec-serve.yaml" <<YAML
rules: []
httpMaxConns: $((CLIENTS + 100))
httpMaxConnsPerAddr: $((CLIENTS + 100))
YAML
  "$LIVREC" serve --config "$OUT/livrec-serve.yaml" --data-dir "$sd" --rtmp-addr $LIVREC_RTMP --http-addr $LIVREC_HTTP \
    --log-level warn >"$OUT/livrec-serve.log" 2>&1 &
  pid=$!
  PIDS_TO_KILL="$PIDS_TO_KILL $pid"
  until curl -sf "http://$LIVREC_HTTP/healthz" >/dev/null; do kill -0 $pid 2>/dev/null || { cat "$OUT/livrec-serve.log" >&2; exit 1; }; sleep 0.1; done
  wrk_run livrec-serve "http://$LIVREC_HTTP/files" "echo $pid"
  kill -TERM $pid; wait $pid || true
  # nginx: the same directory, a plain root with sendfile (Debian's defaults otherwise).
  nd=$OUT/nginx-http; rm -rf "$nd"; mkdir -p "$nd/logs"
  nginx_head "$nd" >"$nd/nginx.conf"
  cat >>"$nd/nginx.conf" <<CONF
http {
  include /etc/nginx/mime.types;
  sendfile on; tcp_nopush on; access_log off;
  server { listen 127.0.0.1:$NGINX_HTTP; location /files/ { alias $sd/files/; } }
}
CONF
  nginx -p "$nd" -c "$nd/nginx.conf" -g 'daemon off;' 2>"$nd/logs/stderr.log" &
  npid=$!
  for _ in $(seq 50); do [ -f "$nd/nginx.pid" ] && curl -sf -o /dev/null "http://127.0.0.1:$NGINX_HTTP/files$(head -1 "$OUT/serve-paths.txt")" && break; sleep 0.1; done
  PIDS_TO_KILL="$PIDS_TO_KILL $(cat "$nd/nginx.pid")"
  wrk_run nginx-serve "http://127.0.0.1:$NGINX_HTTP/files" "nginx_pids_in $nd"
  stop_nginx "$nd" $npid
  rm -rf "$sd" "$nd"
fi

# --- remux vs ffmpeg -c copy ----------------------------------------------------------
RX=$OUT/remux
time_cmd() { local t0; t0=$(now); "$@" >/dev/null 2>&1 || log "failed: $*"; awk -v a="$(now)" -v b="$t0" 'BEGIN{printf "%.4f\n", a-b}'; }
REMUX=; has remux && REMUX="flv m3u8"
for fmt in $REMUX; do
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
  echo "input $IN ($SIZE bytes); $N streams × ${DUR}s real time, loopback, one format per run; ${SLICE}s segments; scenarios: $SCENARIOS$([ "$ROUNDS" = 1 ] || echo "; record: median of $ROUNDS rounds, alternating who goes first")"
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
  if has idle; then
    l=livrec-idle n=nginx-idle
    row "[idle $IDLE × ${AKBIT} kbit/s audio, flv] CPU s per conn-minute" "$(get $l cpu_per_stream_min)" "$(get $n cpu_per_stream_min)"
    row "[idle] RSS steady per connection (KiB)"   "$(get $l rss_steady_per_stream_kib)" "$(get $n rss_steady_per_stream_kib)"
    row "[idle] RSS peak per connection (KiB)"     "$(get $l rss_peak_per_stream_kib)" "$(get $n rss_peak_per_stream_kib)"
    row0 "[idle] files"                            "$(get $l files)" "$(get $n files)"
    row0 "[idle] max lag behind real time (s)"     "$(get $l max_lag_s)" "$(get $n max_lag_s)"
    row "[idle] load generator CPU (% of a core)" "$(get $l gen_cpu_pct | xargs printf '%.1f')" "$(get $n gen_cpu_pct | xargs -r printf '%.1f')"
  fi
  if has serve; then
    l=livrec-serve n=nginx-serve
    row "[serve $RECS HLS, $CLIENTS clients] requests/s"  "$(get $l rps)" "$(get $n rps)"
    row "[serve] MB/s"                             "$(get $l mbps)" "$(get $n mbps)"
    row "[serve] server CPU s per 1000 requests"   "$(get $l cpu_per_kreq)" "$(get $n cpu_per_kreq)"
    row "[serve] latency p99 (ms)"                 "$(get $l latency_p99_ms)" "$(get $n latency_p99_ms)"
    row0 "[serve] errors"                          "$(get $l errors)" "$(get $n errors)"
  fi
  for fmt in $REMUX; do
    row "remux to $fmt, median of $RUNS (s) vs ffmpeg" "$(median <"$OUT/remux-livrec-$fmt.txt")" "$(median <"$OUT/remux-ffmpeg-$fmt.txt")"
  done
  echo
  echo "(ratio = livrec / peer; the remux rows compare with ffmpeg -c copy, the serve rows with Debian's nginx, the"
  echo " others with nginx-rtmp. load average before the run: $LOAD0; after: $(cut -d' ' -f1-3 /proc/loadavg). livrec's files are final when"
  echo " the stitch window (delayTime ${WINDOW} s, the minimum) has expired after the stream ended; nginx-rtmp closes its"
  echo " flv at once and leaves HLS playlists live (no ENDLIST). mp4/cmaf have no nginx-rtmp peer. Raw data: $OUT)"
} | tee "$OUT/results.txt"
