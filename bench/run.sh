#!/usr/bin/env bash
# hooktunnel vs bore vs direct, on loopback, in one run. See BENCHMARKS.md.
#
#   bench/run.sh              everything: throughput table, memory checks
#   bench/run.sh throughput   only the wrk table
#   bench/run.sh memory       only relay RSS with idle agents and the 25 MiB body
#   bench/run.sh profile      where hooktunnel's CPU goes (perf sampling; callgrind with
#                             BENCH_PROFILER=callgrind), GET 1 KiB at 50 keep-alive conns
#
# Environment (all optional):
#   BENCH_DURATION=6   measured seconds per cell (each cell also gets BENCH_WARMUP s first)
#   BENCH_WARMUP=1     unmeasured warm-up seconds per cell
#   BENCH_ROUNDS=2     rounds; the order of the paths alternates between rounds
#   BENCH_CELLS="get1k post4k close1k get1m lat1"   a subset of the cells
#   BENCH_PATHS="direct bore hooktunnel"             a subset of the paths (ratios need all three)
#   BENCH_IDLE_AGENTS=1000
#   HT_BIN_DIR=DIR     use hooktunnel / hooktunnel-relay / examples/idle_agents from DIR
#                      instead of building target/release here
#   BENCH_OUT=DIR      where results go (default bench/out/<date>-<time>)
#   BENCH_KEEP=1       keep the scratch dir (nginx, agent homes, logs)
#
# Installs what is missing: wrk and nginx (apt-get), bore-cli (cargo install
# into bench/.tools). Everything listens on 127.0.0.1 only; every process it
# starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${1:-all}
DURATION=${BENCH_DURATION:-6}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-2}
IDLE_AGENTS=${BENCH_IDLE_AGENTS:-1000}
TOOLS=$ROOT/bench/.tools
OUT=${BENCH_OUT:-$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)}
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/hooktunnel-bench.XXXXXX")
BORE_CONTROL_PORT=7835 # fixed by bore
mkdir -p "$OUT"

case $MODE in all | throughput | memory | profile) ;; *)
  echo "usage: $0 [all|throughput|memory|profile]" >&2
  exit 2
  ;;
esac

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---------------------------------------------------------------- processes

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    log "scratch kept in $SCRATCH"
  else
    rm -rf "$SCRATCH"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a background process, remembering its pid for cleanup. Usage:
#   spawn VAR logfile cmd args...   (sets VAR to the pid)
spawn() {
  local var=$1 logfile=$2
  shift 2
  "$@" >"$logfile" 2>&1 &
  PIDS+=("$!")
  printf -v "$var" '%s' "$!"
}

stop() { # stop PID...: TERM, wait, KILL; forget the pid
  local pid p keep
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port PORT PID
  for _ in $(seq 200); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    port_open "$p" || {
      echo "$p"
      return
    }
  done
  die "no free port"
}

# Resident memory of a process from /proc, in KiB: rss_kib PID VmRSS|VmHWM
rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# CPU time (user + system) of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- tools

as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

ensure_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq
    local pkgs=(wrk)
    [[ " ${missing[*]} " == *" nginx "* ]] && pkgs=(wrk nginx-light)
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${pkgs[@]}" ||
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk nginx
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  if [[ ! -x $TOOLS/bin/bore ]]; then
    log "installing bore-cli into bench/.tools"
    cargo install bore-cli --locked --root "$TOOLS"
  fi
  BORE=$TOOLS/bin/bore
  if [[ -n ${HT_BIN_DIR:-} ]]; then
    BIN=$HT_BIN_DIR
  else
    log "building hooktunnel (release)"
    (cd "$ROOT" && cargo build --release --workspace --bins &&
      cargo build --release -p hooktunnel --example idle_agents)
    BIN=$ROOT/target/release
  fi
  for f in hooktunnel hooktunnel-relay examples/idle_agents; do
    [[ -x $BIN/$f ]] || die "$BIN/$f is missing (build it, or unset HT_BIN_DIR)"
  done
}

machine_info() {
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "checkout: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src relay-server 2>/dev/null || echo ' (+ uncommitted changes in src/relay-server)')"
    echo "binaries: $BIN$([[ -f $BIN/../../COMMIT ]] && echo " (built from commit $(cat "$BIN/../../COMMIT"))")"
    echo "nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "kernel: $(uname -sr)"
    echo "memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{ print $2 }')"
    echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*nginx\///')"
    echo "bore: $("$BORE" --version 2>&1)"
    echo "relay flags: --listen 127.0.0.1:PORT $(relay_bench_flags)"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee "$OUT/machine.txt" >&2
}

# ---------------------------------------------------------------- the local app

start_nginx() {
  local dir=$SCRATCH/nginx
  mkdir -p "$dir/www" "$dir/tmp"
  NGINX_PORT=$(free_port)
  # 1 KiB of JSON, exactly.
  {
    printf '{"ok":true,"pad":"'
    head -c $((1024 - 21)) /dev/zero | tr '\0' 'x'
    printf '"}\n'
  } >"$dir/www/small.json"
  head -c $((1024 * 1024)) /dev/urandom >"$dir/www/big.bin"
  head -c $((25 * 1024 * 1024)) /dev/urandom >"$dir/www/big25.bin"
  [[ $(stat -c %s "$dir/www/small.json") == 1024 ]] || die "small.json is not 1024 bytes"
  # nginx workers may run as nobody: let them read the files.
  chmod -R a+rX "$SCRATCH"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        root $dir/www;
        location = /small.json { default_type application/json; }
        location = /big.bin { default_type application/octet-stream; }
        location = /big25.bin { default_type application/octet-stream; }
        # POST: nginx reads (and discards) the body, then answers.
        location = /post {
            client_max_body_size 64m;
            client_body_buffer_size 64k;
            default_type application/json;
            return 200 '{"ok":true}\n';
        }
    }
}
EOF
  spawn NGINX_PID "$dir/stdout.log" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
  wait_port "$NGINX_PORT" "$NGINX_PID" || die "nginx did not start: $(cat "$dir/error.log" "$dir/stdout.log")"
  log "nginx on 127.0.0.1:$NGINX_PORT"
}

# ---------------------------------------------------------------- the tunnels

start_bore() {
  port_open $BORE_CONTROL_PORT && die "port $BORE_CONTROL_PORT (bore's control port) is in use"
  BORE_PORT=$(free_port)
  spawn BORE_SERVER_PID "$SCRATCH/bore-server.log" "$BORE" server --bind-addr 127.0.0.1 \
    --min-port "$BORE_PORT" --max-port "$BORE_PORT"
  wait_port $BORE_CONTROL_PORT "$BORE_SERVER_PID" || die "bore server did not start"
  spawn BORE_LOCAL_PID "$SCRATCH/bore-local.log" "$BORE" local "$NGINX_PORT" \
    --to 127.0.0.1 --port "$BORE_PORT"
  wait_port "$BORE_PORT" "$BORE_LOCAL_PID" || die "bore local did not start: $(cat "$SCRATCH/bore-local.log")"
  log "bore: 127.0.0.1:$BORE_PORT → $NGINX_PORT"
}

# The relay's per-IP and per-tunnel rate limits (default 100/s and 200/s) would
# turn a load test into a test of the limiter: the benchmark switches them off.
# (Its per-address in-flight share, 125 of 1000, is above every cell's 50 conns.)
# Where the relay has no such flags (older builds), nothing is passed.
# Every load generator and the idle agents connect from 127.0.0.1, so the
# per-address connection cap (default 256) is raised too where it exists.
relay_bench_flags() {
  local help flags=""
  help=$("$BIN/hooktunnel-relay" --help 2>/dev/null || true)
  if grep -q -- '--rate-per-ip' <<<"$help"; then
    flags="--rate-per-ip off --rate-per-tunnel off"
  fi
  if grep -q -- '--max-conns-per-ip' <<<"$help"; then
    flags="$flags --max-conns-per-ip 1000000"
  fi
  echo "$flags"
}

# start_hooktunnel TAG [relay args...]: sets RELAY_PID, AGENT_PID, HT_URL
start_hooktunnel() {
  local tag=$1
  shift
  local port home=$SCRATCH/$tag-home fifo=$SCRATCH/$tag.fifo
  port=$(free_port)
  mkdir -p "$home"
  # shellcheck disable=SC2046
  spawn RELAY_PID "$SCRATCH/$tag-relay.log" "$BIN/hooktunnel-relay" --listen "127.0.0.1:$port" $(relay_bench_flags) "$@"
  wait_port "$port" "$RELAY_PID" || die "relay did not start: $(cat "$SCRATCH/$tag-relay.log")"
  # The agent's NDJSON goes through a fifo: the first line (ready) is kept,
  # the rest (one line per exchange) is only counted.
  mkfifo "$fifo"
  {
    IFS= read -r first && printf '%s\n' "$first" >"$SCRATCH/$tag-ready.json"
    wc -l >"$SCRATCH/$tag-exchanges.count"
  } <"$fifo" &
  PIDS+=("$!")
  HOOKTUNNEL_HOME=$home "$BIN/hooktunnel" listen "$NGINX_PORT" --relay "http://127.0.0.1:$port" \
    --json --no-tui >"$fifo" 2>"$SCRATCH/$tag-agent.log" &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  HT_URL=
  for _ in $(seq 200); do
    [[ -s $SCRATCH/$tag-ready.json ]] && break
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.05
  done
  HT_URL=$(sed -n 's/.*"public_url":"\([^"]*\)".*/\1/p' "$SCRATCH/$tag-ready.json" 2>/dev/null || true)
  [[ -n $HT_URL ]] || die "agent did not report a public URL: $(cat "$SCRATCH/$tag-agent.log")"
  log "hooktunnel ($tag): $HT_URL → $NGINX_PORT (relay pid $RELAY_PID, agent pid $AGENT_PID)"
}

# ---------------------------------------------------------------- throughput

# path → base URL and the pids whose CPU time is charged to it
base_url() {
  case $1 in
  direct) echo "http://127.0.0.1:$NGINX_PORT" ;;
  bore) echo "http://127.0.0.1:$BORE_PORT" ;;
  hooktunnel) echo "$HT_URL" ;;
  esac
}
path_pids() {
  case $1 in
  direct) echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
  bore) echo "$BORE_SERVER_PID $BORE_LOCAL_PID" ;;
  hooktunnel) echo "$RELAY_PID $AGENT_PID" ;;
  esac
}
sum_ticks() {
  local t=0 p
  for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}

# cell name → "connections threads url-suffix env..."
read -r -a CELLS <<<"${BENCH_CELLS:-get1k post4k close1k get1m lat1}"
PATHS=${BENCH_PATHS:-direct bore hooktunnel}
cell_spec() {
  case $1 in
  get1k) echo "50 2 /small.json" ;;
  post4k) echo "50 2 /post BENCH_POST_BYTES=4096" ;;
  close1k) echo "50 2 /small.json BENCH_CLOSE=1" ;;
  get1m) echo "8 2 /big.bin" ;;
  lat1) echo "1 1 /small.json" ;;
  esac
}
cell_title() {
  case $1 in
  get1k) echo "GET 1 KiB, 50 keep-alive conns (req/s)" ;;
  post4k) echo "POST 4 KiB, 50 keep-alive conns (req/s)" ;;
  close1k) echo "GET 1 KiB, Connection: close, 50 conns (req/s)" ;;
  get1m) echo "GET 1 MiB, 8 conns (MiB/s)" ;;
  lat1) echo "GET 1 KiB, 1 conn" ;;
  esac
}

# settle CONTEXT: flush dirty pages, then wait (up to 120 s) until every
# process under test (nginx, bore, relay, agent) is idle (< 5% of a core over
# 0.5 s), so work left over from one run (the agent still writing captured
# 1 MiB bodies to its history, say) is charged neither to the next run nor to
# another path. Waits longer than a second are logged to settle.txt.
settle() {
  local context=$1 t0 a b waited p
  local -a pids=()
  for p in direct bore hooktunnel; do
    # shellcheck disable=SC2207
    pids+=($(path_pids "$p"))
  done
  t0=$(date +%s.%N)
  sync
  for _ in $(seq 240); do
    a=$(sum_ticks "${pids[@]}")
    sleep 0.5
    b=$(sum_ticks "${pids[@]}")
    (((b - a) * 100 < CLK_TCK * 5 / 10)) && break
  done
  waited=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a - 0.5 }')
  if awk -v w="$waited" 'BEGIN { exit !(w > 1) }'; then
    echo "the processes under test were busy for $waited s after $context" | tee -a "$OUT/settle.txt" >&2
  fi
}

# run_cell ROUND CELL PATH: one warm-up and one measured wrk run; appends to results.tsv
run_cell() {
  local round=$1 cell=$2 path=$3 conns threads suffix url line ticks0 ticks1 first0 first1 rest
  local -a envs
  read -r conns threads suffix rest <<<"$(cell_spec "$cell")"
  read -r -a envs <<<"${rest:-}"
  url=$(base_url "$path")$suffix
  settle "the run before round $round $cell $path"
  env "${envs[@]}" wrk -t"$threads" -c"$conns" -d"${WARMUP}s" -s "$ROOT/bench/wrk.lua" "$url" >/dev/null 2>&1 || true
  local pids
  read -r -a pids <<<"$(path_pids "$path")"
  ticks0=$(sum_ticks "${pids[@]}")
  first0=$(cpu_ticks "${pids[0]}")
  env "${envs[@]}" wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 10s --latency \
    -s "$ROOT/bench/wrk.lua" "$url" >"$OUT/wrk-$round-$cell-$path.txt" 2>&1 || true
  ticks1=$(sum_ticks "${pids[@]}")
  first1=$(cpu_ticks "${pids[0]}")
  line=$(grep '^RESULT ' "$OUT/wrk-$round-$cell-$path.txt" || true)
  [[ -n $line ]] || {
    log "wrk failed for $cell/$path: $(tail -3 "$OUT/wrk-$round-$cell-$path.txt")"
    line="RESULT requests=0 duration_us=1 bytes=0 p50_us=0 p99_us=0 mean_us=0 err_connect=0 err_read=0 err_write=0 err_status=0 err_timeout=0"
  }
  # shellcheck disable=SC2086
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$cell" "$path" "${line#RESULT }" \
    "$(((ticks1 - ticks0) * 1000 / CLK_TCK))" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$(pgrep -c -x rustc || true)" "$(((first1 - first0) * 1000 / CLK_TCK))" >>"$OUT/results.tsv"
  log "round $round  $cell  $path: $(summary_line "$line")"
}

summary_line() {
  awk -v line="$1" 'BEGIN {
    n = split(line, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    rps = v["requests"] / (v["duration_us"] / 1e6)
    err = v["err_connect"] + v["err_read"] + v["err_write"] + v["err_status"] + v["err_timeout"]
    printf "%.0f req/s, %.1f MiB/s, p50 %.3f ms, p99 %.3f ms, errors %d", rps, v["bytes"] / (v["duration_us"] / 1e6) / 1048576, v["p50_us"] / 1000, v["p99_us"] / 1000, err
  }'
}

sanity_check() {
  local path base code size
  for path in direct bore hooktunnel; do
    base=$(base_url "$path")
    read -r code size < <(curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "$base/small.json")
    [[ $code == 200 && $size == 1024 ]] || die "$path: GET /small.json gave $code, $size bytes"
    read -r code size < <(curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "$base/big.bin")
    [[ $code == 200 && $size == 1048576 ]] || die "$path: GET /big.bin gave $code, $size bytes"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
      --data-binary "@$SCRATCH/nginx/www/small.json" "$base/post")
    [[ $code == 200 ]] || die "$path: POST /post gave $code"
  done
  log "sanity: all three paths serve 1 KiB, 1 MiB and POST"
}

throughput() {
  start_nginx
  start_bore
  start_hooktunnel ht
  sanity_check
  printf 'round\tcell\tpath\tresult\tcpu_ms\tload1\trustc\tcpu_first_ms\n' >"$OUT/results.tsv"
  local round cell path order
  for round in $(seq "$ROUNDS"); do
    order=$PATHS
    ((round % 2)) || order=$(printf '%s\n' $PATHS | tac | tr '\n' ' ')
    log "round $round (load $(cut -d' ' -f1-3 /proc/loadavg))"
    for cell in "${CELLS[@]}"; do
      for path in $order; do run_cell "$round" "$cell" "$path"; done
    done
  done
  {
    echo "relay VmHWM: $(rss_kib "$RELAY_PID" VmHWM) KiB, agent VmHWM: $(rss_kib "$AGENT_PID" VmHWM) KiB (after the throughput runs)"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee -a "$OUT/machine.txt" >&2
  stop "$AGENT_PID" "$RELAY_PID"
  sleep 0.5
  local count
  count=$(cat "$SCRATCH/ht-exchanges.count" 2>/dev/null || echo '?')
  echo "hooktunnel agent printed $count exchange lines (capture on)" | tee -a "$OUT/machine.txt" >&2
  stop "$BORE_LOCAL_PID" "$BORE_SERVER_PID"
  summarize "$OUT/results.tsv" | tee "$OUT/results.md"
}

# The markdown table: mean over rounds (each round in brackets), ratios of the means.
summarize() {
  awk -F'\t' -v rounds="$ROUNDS" -v titles="$(for c in "${CELLS[@]}"; do printf '%s=%s;' "$c" "$(cell_title "$c")"; done)" '
    NR == 1 { next }
    {
      round = $1; cell = $2; path = $3; n = split($4, kv, " ")
      delete v; for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
      secs = v["duration_us"] / 1e6
      rps[cell, path, round] = v["requests"] / secs
      mibs[cell, path, round] = v["bytes"] / secs / 1048576
      p50[cell, path, round] = v["p50_us"] / 1000
      p99[cell, path, round] = v["p99_us"] / 1000
      errs[cell, path] += v["err_connect"] + v["err_read"] + v["err_write"] + v["err_status"] + v["err_timeout"]
      cpu[cell, path] += $5; first[cell, path] += $8; reqs[cell, path] += v["requests"]
      load[round] = load[round] " " $6; if ($7 > 0) busy[round] += 1
    }
    function cellv(arr, cell, path, fmt,   r, s, list, m) {
      s = 0; list = ""
      for (r = 1; r <= rounds; r++) { s += arr[cell, path, r]; list = list (r > 1 ? " · " : "") sprintf(fmt, arr[cell, path, r]) }
      m = s / rounds; mean[path] = m
      return sprintf(fmt, m) " (" list ")"
    }
    function row(label, arr, cell, fmt,   d, b, h) {
      d = cellv(arr, cell, "direct", fmt); b = cellv(arr, cell, "bore", fmt); h = cellv(arr, cell, "hooktunnel", fmt)
      printf "| %s | %s | %s | %s | %s | %s |\n", label, d, b, h, ratio(mean["hooktunnel"], mean["bore"]), ratio(mean["hooktunnel"], mean["direct"])
    }
    function ratio(a, b) { return b > 0 ? sprintf("%.2f×", a / b) : "n/a" }
    END {
      n = split(titles, t, ";"); for (i = 1; i <= n; i++) { split(t[i], p, "="); title[p[1]] = p[2]; order[i] = p[1] }
      print "| cell | direct | bore | hooktunnel | hooktunnel/bore | hooktunnel/direct |"
      print "| --- | ---: | ---: | ---: | ---: | ---: |"
      for (i = 1; i < n; i++) {
        c = order[i]
        if (c == "lat1") {
          row(title[c] " — p50 ms", p50, c, "%.3f")
          d50 = mean["hooktunnel"] - mean["direct"]
          row(title[c] " — p99 ms", p99, c, "%.3f")
        } else if (c == "get1m") {
          row(title[c], mibs, c, "%.0f")
        } else {
          row(title[c], rps, c, "%.0f")
        }
      }
      print ""
      printf "One-connection p50, hooktunnel minus direct: %+.3f ms.\n", d50
      print ""
      print "| cell | errors direct / bore / hooktunnel | tunnel CPU per request, µs: bore (server+local) / hooktunnel (relay+agent); nginx for direct | split, µs: bore server / local; hooktunnel relay / agent |"
      print "| --- | --- | --- | --- |"
      for (i = 1; i < n; i++) {
        c = order[i]
        rb = reqs[c, "bore"] ? reqs[c, "bore"] : 1; rh = reqs[c, "hooktunnel"] ? reqs[c, "hooktunnel"] : 1
        printf "| %s | %d / %d / %d | %.0f / %.0f / %.0f | %.0f / %.0f; %.0f / %.0f |\n", c, errs[c, "direct"], errs[c, "bore"], errs[c, "hooktunnel"],
          cpu[c, "bore"] * 1000 / rb,
          cpu[c, "hooktunnel"] * 1000 / rh,
          cpu[c, "direct"] * 1000 / (reqs[c, "direct"] ? reqs[c, "direct"] : 1),
          first[c, "bore"] * 1000 / rb, (cpu[c, "bore"] - first[c, "bore"]) * 1000 / rb,
          first[c, "hooktunnel"] * 1000 / rh, (cpu[c, "hooktunnel"] - first[c, "hooktunnel"]) * 1000 / rh
      }
      print ""
      for (r = 1; r <= rounds; r++) printf "Round %d: 1-min load average after each run:%s; runs with a rustc (someone compiling) running: %d\n", r, load[r], busy[r]
    }' "$1"
}

# ---------------------------------------------------------------- memory

idle_agents() {
  local port relay out rss0 rss1 hwm health
  port=$(free_port)
  # shellcheck disable=SC2046
  spawn relay "$SCRATCH/idle-relay.log" "$BIN/hooktunnel-relay" --listen "127.0.0.1:$port" $(relay_bench_flags)
  wait_port "$port" "$relay" || die "relay did not start"
  sleep 0.3
  rss0=$(rss_kib "$relay" VmRSS)
  out=$SCRATCH/idle-agents.out
  spawn agents "$out" "$BIN/examples/idle_agents" "http://127.0.0.1:$port" "$IDLE_AGENTS" 8
  for _ in $(seq 600); do
    grep -q '^READY' "$out" 2>/dev/null && break
    kill -0 "$agents" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "^READY $IDLE_AGENTS " "$out" || die "idle agents did not all connect: $(cat "$out")"
  sleep 3 # let the relay settle
  rss1=$(rss_kib "$relay" VmRSS)
  hwm=$(rss_kib "$relay" VmHWM)
  health=$(curl -s "http://127.0.0.1:$port/_hooktunnel/health")
  stop "$agents" "$relay"
  {
    echo "### Relay memory with $IDLE_AGENTS idle agents"
    echo
    echo "$(grep '^READY' "$out")"
    echo
    echo "| relay | KiB | MiB |"
    echo "| --- | ---: | ---: |"
    awk -v a="$rss0" -v b="$rss1" -v h="$hwm" -v n="$IDLE_AGENTS" 'BEGIN {
      printf "| VmRSS before any agent | %d | %.1f |\n", a, a / 1024
      printf "| VmRSS with %d agents | %d | %.1f |\n", n, b, b / 1024
      printf "| VmHWM (peak) | %d | %.1f |\n", h, h / 1024
      printf "| per idle agent | %.1f | |\n", (b - a) / n
    }'
    echo
    echo "health while connected: $health"
    echo
  } | tee -a "$OUT/memory.md"
}

big_body() {
  local big=$SCRATCH/nginx/www/big25.bin i code got want reps=${BENCH_BIG_REPS:-5}
  start_hooktunnel big --max-body 30000000
  local r0 a0 r1 a1
  r0=$(rss_kib "$RELAY_PID" VmRSS)
  a0=$(rss_kib "$AGENT_PID" VmRSS)
  want=$(sha256sum "$big" | cut -d' ' -f1)
  for i in $(seq "$reps"); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/octet-stream' \
      --data-binary "@$big" "$HT_URL/post")
    [[ $code == 200 ]] || die "25 MiB POST #$i through hooktunnel gave $code"
    got=$(curl -s "$HT_URL/big25.bin" | sha256sum | cut -d' ' -f1)
    [[ $got == "$want" ]] || die "25 MiB GET #$i through hooktunnel came back different"
    if ((i == 1)); then
      sleep 1
      r1=$(rss_kib "$RELAY_PID" VmHWM)
      a1=$(rss_kib "$AGENT_PID" VmHWM)
    fi
  done
  sleep 1 # let the store writer finish
  local rh ah rn an
  rh=$(rss_kib "$RELAY_PID" VmHWM)
  ah=$(rss_kib "$AGENT_PID" VmHWM)
  rn=$(rss_kib "$RELAY_PID" VmRSS)
  an=$(rss_kib "$AGENT_PID" VmRSS)
  stop "$AGENT_PID" "$RELAY_PID"
  {
    echo "### 25 MiB bodies through hooktunnel (relay --max-body 30000000)"
    echo
    echo "$reps rounds, one after another, of: POST 25 MiB (answered 200), GET a 25 MiB file (sha256 checked). Capture on."
    echo
    echo "| process | VmRSS idle, MiB | VmHWM after round 1, MiB | VmHWM after round $reps, MiB | VmRSS at the end, MiB | peak over idle ÷ 25 MiB |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    awk -v b="$r0" -v o="$r1" -v h="$rh" -v a="$rn" 'BEGIN { printf "| relay | %.1f | %.1f | %.1f | %.1f | %.1f |\n", b / 1024, o / 1024, h / 1024, a / 1024, (h - b) / 1024 / 25 }'
    awk -v b="$a0" -v o="$a1" -v h="$ah" -v a="$an" 'BEGIN { printf "| agent | %.1f | %.1f | %.1f | %.1f | %.1f |\n", b / 1024, o / 1024, h / 1024, a / 1024, (h - b) / 1024 / 25 }'
    echo
  } | tee -a "$OUT/memory.md"
}

memory() {
  [[ -n ${NGINX_PID:-} ]] || start_nginx
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  (($(ulimit -n) > 2 * IDLE_AGENTS + 100)) || die "open-file limit $(ulimit -n) is too low for $IDLE_AGENTS agents"
  : >"$OUT/memory.md"
  idle_agents
  big_body
}

# ---------------------------------------------------------------- profile

# perf sampling (cpu-clock works in VMs without hardware counters) of the relay
# and the agent during a keep-alive GET 1 KiB run; or callgrind on the agent
# and on the relay in turn (slow: ~50× under valgrind, so few requests).
profile() {
  local profiler=${BENCH_PROFILER:-perf} secs=${BENCH_PROFILE_SECS:-10}
  start_nginx
  case $profiler in
  perf)
    command -v perf >/dev/null || die "perf is missing (apt-get install linux-perf)"
    start_hooktunnel prof
    wrk -t2 -c50 -d1s "$HT_URL/small.json" >/dev/null
    perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$RELAY_PID,$AGENT_PID" \
      -o "$OUT/perf.data" -- sleep "$((secs + 1))" >"$OUT/perf-record.log" 2>&1 &
    local perf_pid=$!
    PIDS+=("$perf_pid")
    sleep 0.5
    wrk -t2 -c50 -d"${secs}s" --latency -s "$ROOT/bench/wrk.lua" "$HT_URL/small.json" | tee "$OUT/profile-wrk.txt" >&2
    wait "$perf_pid" || true
    stop "$AGENT_PID" "$RELAY_PID"
    perf report -i "$OUT/perf.data" --no-children --sort pid,dso --stdio -g none 2>/dev/null | grep -v '^$' | head -40 >"$OUT/perf-dso.txt" || true
    perf report -i "$OUT/perf.data" --no-children --sort pid,sym --stdio -g none --percent-limit 0.4 2>/dev/null |
      grep -v '^$' | head -120 >"$OUT/perf-self.txt" || true
    perf report -i "$OUT/perf.data" --children --sort pid,sym --stdio -g none --percent-limit 0.5 2>/dev/null | grep -v "(inlined)" |
      grep -v '^$' | head -160 >"$OUT/perf-children.txt" || true
    log "perf reports: $OUT/perf-{dso,self,children}.txt"
    ;;
  callgrind)
    command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"
    local which
    for which in agent relay; do
      local port home=$SCRATCH/cg-$which-home relay agent
      port=$(free_port)
      mkdir -p "$home"
      local relay_cmd=("$BIN/hooktunnel-relay" --listen "127.0.0.1:$port")
      read -r -a extra <<<"$(relay_bench_flags)"
      relay_cmd+=("${extra[@]}")
      local agent_cmd=("$BIN/hooktunnel" listen "$NGINX_PORT"
        --relay "http://127.0.0.1:$port" --json --no-tui)
      local cg=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$which.out")
      if [[ $which == relay ]]; then relay_cmd=("${cg[@]}" "${relay_cmd[@]}"); else agent_cmd=("${cg[@]}" "${agent_cmd[@]}"); fi
      agent_cmd=(env HOOKTUNNEL_HOME="$home" "${agent_cmd[@]}")
      spawn relay "$SCRATCH/cg-$which-relay.log" "${relay_cmd[@]}"
      wait_port "$port" "$relay" || die "relay did not start"
      spawn agent "$SCRATCH/cg-$which-agent.out" "${agent_cmd[@]}"
      local url=
      for _ in $(seq 600); do
        url=$(sed -n 's/.*"public_url":"\([^"]*\)".*/\1/p' "$SCRATCH/cg-$which-agent.out" | head -1)
        [[ -n $url ]] && break
        sleep 0.1
      done
      [[ -n $url ]] || die "agent under callgrind did not come up"
      wrk -t1 -c8 -d"${secs}s" "$url/small.json" | tee "$OUT/callgrind-$which-wrk.txt" >&2
      stop "$agent" "$relay"
      callgrind_annotate --inclusive=yes "$OUT/callgrind.$which.out" 2>/dev/null | head -80 >"$OUT/callgrind-$which-inclusive.txt" || true
      callgrind_annotate "$OUT/callgrind.$which.out" 2>/dev/null | head -60 >"$OUT/callgrind-$which-self.txt" || true
    done
    log "callgrind reports: $OUT/callgrind-{agent,relay}-{inclusive,self}.txt"
    ;;
  *) die "BENCH_PROFILER must be perf or callgrind" ;;
  esac
}

# ---------------------------------------------------------------- main

ensure_tools
machine_info
case $MODE in
all)
  throughput
  memory
  ;;
throughput) throughput ;;
memory) memory ;;
profile) profile ;;
esac
log "results in $OUT"
