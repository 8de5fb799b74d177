#!/usr/bin/env bash
# The serving measurements in one sitting, all with `swin-serve bench`:
#   1. the engine's own batch-8 throughput (local bench) vs end-to-end Classify throughput at saturation;
#   2. throughput with and without --max-queue-delay at concurrency 8 and 32;
#   3. p50/p99 at 50% and 90% of the saturation rate (open loop, --rate);
#   4. 4x overload (open loop): shed fraction, p99 of the accepted calls, the server's peak RSS;
#   5. concurrent decompression bombs (PNG 9400x9400, GIF with a 9459x9459 screen) with
#      --memory-budget 1GiB and off: codes, the server's peak RSS;
#   6. SIGTERM under load: codes the callers saw, time from SIGTERM to exit.
#
#   benches/serving.sh [--seconds S] [--threads N] [--queue-delay SECONDS] [--bomb-budget SIZE]
#
# Environment: SWIN_SERVE_BIN (an already built swin-serve; default: build release), CARGO_TARGET_DIR.
# Loads every core for several minutes: run it on an otherwise idle machine.
set -euo pipefail

SECS=20
THREADS=$(nproc)
QDELAY=0.01
BOMB_BUDGET=1GiB
while [[ $# -gt 0 ]]; do
    case "$1" in
        --seconds) SECS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --queue-delay) QDELAY=$2; shift 2 ;;
        --bomb-budget) BOMB_BUDGET=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
source benches/lib.sh
BIN=${SWIN_SERVE_BIN:-}
OUT=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill -9 "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$OUT"
}
trap cleanup EXIT

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:  $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores"
if [[ -z "$BIN" ]]; then
    cargo build --release --bin swin-serve >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/swin-serve"
fi

write_images "$OUT" bombs
ls -l "$OUT"/bomb.* | awk '{print "bomb file:", $NF, $5, "bytes"}'

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
rss() { # VmRSS and VmHWM of the server, MiB
    awk '/VmRSS|VmHWM/ {printf "%s %.0f MiB  ", $1, $2 / 1024}' "/proc/$SERVER_PID/status"
}
load() { # label, bench flags...; prints the result row
    local label=$1; shift
    local row
    row=$("$BIN" bench --server "$URL" --image "$OUT/image.png" "$@" 2>/dev/null | tail -1 || true)
    printf '%-34s %s\n' "$label" "$row"
    echo "$row" > "$OUT/last.txt"
}
col() { awk -v c="$1" '{print $c}' "$OUT/last.txt"; }

echo
echo "== 1. engine vs end to end (Classify, 256x256 PNG)"
"$BIN" bench --batch 8 --runs 10 --threads "$THREADS" | tail -2
ENGINE8=$("$BIN" bench --json --batch 8 --runs 10 --threads "$THREADS" | python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin if l.startswith("{")][0]["img_per_s"])')
start_server
echo "server idle: $(rss)"
printf '%-34s %s\n' "" "rpc        conc     ok errors     img/s   mean ms    p50 ms    p90 ms    p99 ms"
load "saturation (closed loop, c=32)" --concurrency 32 --duration "$SECS" --warmup 16
SAT=$(col 5)
python3 -c "print(f'engine batch 8: {float($ENGINE8):.2f} img/s; end to end at saturation: {float($SAT):.2f} img/s = {float($SAT)/float($ENGINE8)*100:.1f}% (goal >= 95%)')"

echo
echo "== 2. --max-queue-delay 0 vs $QDELAY s"
load "delay 0, c=8" --concurrency 8 --duration "$SECS" --warmup 8
load "delay 0, c=32" --concurrency 32 --duration "$SECS" --warmup 16
stop_server
start_server --max-queue-delay "$QDELAY"
load "delay $QDELAY, c=8" --concurrency 8 --duration "$SECS" --warmup 8
load "delay $QDELAY, c=32" --concurrency 32 --duration "$SECS" --warmup 16
stop_server

echo
echo "== 3. open loop at 50% and 90% of saturation ($SAT img/s)"
start_server
R50=$(python3 -c "print(round(float($SAT) * 0.5, 2))")
R90=$(python3 -c "print(round(float($SAT) * 0.9, 2))")
load "rate $R50/s (50%)" --rate "$R50" --concurrency 64 --duration "$SECS" --warmup 4
load "rate $R90/s (90%)" --rate "$R90" --concurrency 64 --duration "$SECS" --warmup 4

echo
echo "== 4. 4x overload (open loop from 4 client processes, one connection each), server defaults"
R400=$(python3 -c "print(round(float($SAT) * 4, 2))")
R100=$(python3 -c "print(round(float($SAT), 2))")
CLIENTS=()
for c in 1 2 3 4; do
    "$BIN" bench --server "$URL" --image "$OUT/image.png" --rate "$R100" --concurrency 256 \
        --duration "$SECS" --warmup 0 > "$OUT/over-$c.txt" 2>/dev/null &
    CLIENTS+=($!)
done
wait "${CLIENTS[@]}" || true
python3 - "$OUT" "$R400" <<'EOF'
import sys
ok = err = 0; p99 = []; codes = {}
for c in range(1, 5):
    f = open(f"{sys.argv[1]}/over-{c}.txt").read().strip().splitlines()[-1].split()
    ok += int(f[2]); err += int(f[3]); p99.append(float(f[8]))
    for kv in f[9:]:
        k, v = kv.split("="); codes[k] = codes.get(k, 0) + int(v)
print(f"offered {sys.argv[2]} calls/s: {ok + err} calls, shed (refused) {err / max(1, ok + err) * 100:.1f}%; "
      f"p99 of accepted calls (worst client) {max(p99):.0f} ms; codes {codes or '-'}")
EOF
echo "server after overload: $(rss)"
stop_server

echo
echo "== 5. concurrent decompression bombs, 64 calls 16 at once, per --memory-budget"
for budget in "$BOMB_BUDGET" off; do
    start_server --memory-budget "$budget"
    echo "--memory-budget $budget; server idle: $(rss)"
    for bomb in bomb.png bomb.gif; do
        row=$("$BIN" bench --server "$URL" --image "$OUT/$bomb" --concurrency 16 --requests 64 --warmup 0 2>/dev/null | tail -1 || true)
        printf '  %-10s %s\n' "$bomb" "$row"
        echo "  server after $bomb: $(rss)"
    done
    stop_server
done

echo
echo "== 6. SIGTERM under load (c=16 closed loop; SIGTERM 5 s in)"
start_server --shutdown-timeout 30
( "$BIN" bench --server "$URL" --image "$OUT/image.png" --concurrency 16 --duration 15 --warmup 0 > "$OUT/term.txt" 2> "$OUT/term.err" || true ) &
LOADER=$!
sleep 5
T0=$(date +%s.%N)
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
T1=$(date +%s.%N)
SERVER_PID=
wait "$LOADER" || true
python3 -c "print(f'server exited {float($T1) - float($T0):.2f} s after SIGTERM')"
tail -1 "$OUT/term.txt"
grep -m3 "first error" "$OUT/term.err" || true
