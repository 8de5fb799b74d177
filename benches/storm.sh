#!/usr/bin/env bash
# A refusal storm against one server (issue 20, item 5), measured in one run, with the goal checked:
# `serve --random-weights 0 --queue-capacity 32 --http-listen …` started once; for each RPC, its
# unloaded saturation throughput (`bench server`, 16 callers), then a storm (64 callers retrying at
# once, without back-off, `--expect-refusals`). Goal: storm throughput >= 90% of unloaded, and the
# accepted calls' p99 <= 1.5 x 32 / throughput + 1 s. Also printed: refusals a second, and what a
# refusal cost the server (CPU of its threads other than the engine's, divided by the refusals).
#
#   benches/storm.sh [--rpc classify,http-classify] [--duration S] [--callers N] [--client-nice N]
#                    [--standard-callers] [--image FILE] [--threads N]
#
# The storm's callers are the lean ones (`--rpc classify-storm`, `http-classify-storm`: one shared
# buffer, nothing copied per call, sending stopped once refused), so that the generator, which shares
# the server's cores here, takes as little of them as it can; --standard-callers storms with the
# ordinary callers (tonic's client, hyper's), which copy each image per call (~360 µs of CPU per
# refused call). --client-nice N (default 0) runs the generator at that nice value. Without --image,
# a 640x480 image of ~0.5 MB is written (a JPEG with $PYTHON's PIL if it has one, else a PNG).
# Environment: SWIN_SERVE_BIN (a built swin-serve; default: build release), CARGO_TARGET_DIR, PYTHON
# (default python3). Benchmarks measure; nothing here gates CI.
set -euo pipefail

RPCS=classify,http-classify
DURATION=30
CALLERS=64
CLIENT_NICE=0
IMAGE=
STORM_SUFFIX=-storm
THREADS=$(nproc)
QUEUE=32
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rpc) RPCS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --callers) CALLERS=$2; shift 2 ;;
        --client-nice) CLIENT_NICE=$2; shift 2 ;;
        --image) IMAGE=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --standard-callers) STORM_SUFFIX=; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
source benches/lib.sh
PYTHON=${PYTHON:-python3}
BIN=${SWIN_SERVE_BIN:-}
if [[ -z "$BIN" ]]; then
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-target}/release/swin-serve
fi
OUT=$(mktemp -d)
trap '[[ -n "${SERVER_PID:-}" ]] && stop_server; rm -rf "$OUT"' EXIT

if [[ -z "$IMAGE" ]]; then
    IMAGE=$OUT/storm
    "$PYTHON" - "$IMAGE" <<'EOF'
import random, struct, sys, zlib
out = sys.argv[1]
rng = random.Random(20)
w, h = 640, 480
try:
    from PIL import Image
    img = Image.frombytes("RGB", (w, h), bytes(rng.getrandbits(8) for _ in range(w * h * 3)))
    img.save(out + ".jpg", quality=85, subsampling=0)
    pass
except ImportError:
    # Half of each row noise, half a gradient: ~0.5 MB of PNG.
    def row(y):
        noise = bytes(rng.getrandbits(8) for _ in range(w * 3 // 2))
        return noise + bytes((x + y) % 256 for x in range(w * 3 - len(noise)))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = zlib.compress(b"".join(b"\0" + row(y) for y in range(h)), 9)
    open(out + ".png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                                   + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    pass
EOF
    IMAGE=$(ls "$OUT"/storm.*)
fi

PORT=$(free_port)
HTTP_PORT=$(free_port)
URL=http://127.0.0.1:$PORT
HTTP_URL=http://127.0.0.1:$HTTP_PORT
# The access log on (as served by default), into $OUT/server.log.
SERVER_RUST_LOG=info start_server --queue-capacity "$QUEUE" --http-listen "127.0.0.1:$HTTP_PORT"

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; server: 1 instance of $THREADS threads, --queue-capacity $QUEUE"
echo "image: $IMAGE ($(stat -c %s "$IMAGE") bytes); load generator at nice $CLIENT_NICE; $DURATION s per run"

# CPU seconds (user + system) of the server's threads that are not the engine's.
server_io_cpu() {
    local total=0 t comm ticks
    for t in /proc/"$SERVER_PID"/task/*; do
        comm=$(cat "$t/comm" 2>/dev/null) || continue
        case "$comm" in swin-cpu-*|engine-*) continue ;; esac
        ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null) || continue
        total=$((total + ticks))
    done
    echo "$total"
}

# run RPC CALLERS [--expect-refusals]: one `bench server` run; prints "img/s p99_ms refusals_per_s".
run() {
    local rpc=$1 callers=$2; shift 2
    nice -n "$CLIENT_NICE" "$BIN" bench server --server "$URL" --http-server "$HTTP_URL" --image "$IMAGE" \
        --rpc "$rpc" --concurrency "$callers" --duration "$DURATION" "$@" > "$OUT/run.txt" 2>&1 || {
        cat "$OUT/run.txt" >&2; exit 1; }
    awk -v c="$callers" '
        $2 == c && $5 ~ /^[0-9.]+$/ { ips = $5; p99 = $9 }
        /calls refused for capacity/ { r = $0; sub(/.*\(/, "", r); sub(/\/s\).*/, "", r) }
        END { printf "%s %s %s\n", ips, p99, (r == "" ? 0 : r) }' "$OUT/run.txt"
}

ticks_per_s=$(getconf CLK_TCK)
fail=0
printf '\n%-14s %12s %10s %12s %10s %10s %8s %10s %12s  %s\n' rpc "unloaded/s" "p99 ms" "storm img/s" "p99 ms" "refused/s" "ratio" "p99 bound" "µs/refusal" verdict
IFS=, read -ra rpc_list <<< "$RPCS"
for rpc in "${rpc_list[@]}"; do
    read -r base_ips base_p99 _ < <(run "$rpc" 16)
    before=$(server_io_cpu)
    read -r storm_ips storm_p99 refused < <(run "$rpc$STORM_SUFFIX" "$CALLERS" --expect-refusals)
    after=$(server_io_cpu)
    line=$(awk -v b="$base_ips" -v s="$storm_ips" -v p="$storm_p99" -v r="$refused" -v q="$QUEUE" \
        -v cpu=$((after - before)) -v hz="$ticks_per_s" -v d="$DURATION" '
        BEGIN {
            ratio = s / b; bound = (1.5 * q / s + 1) * 1000
            us = (r > 0) ? cpu / hz / (r * d) * 1e6 : 0
            ok = (ratio >= 0.9 && p <= bound) ? "PASS" : "FAIL"
            printf "%8.3f %10.0f %12.1f  %s", ratio, bound, us, ok
        }')
    printf '%-14s %12s %10s %12s %10s %10s %s\n' "$rpc" "$base_ips" "$base_p99" "$storm_ips" "$storm_p99" "$refused" "$line"
    [[ "$line" == *PASS ]] || fail=1
done
echo
echo "goal: storm throughput >= 0.9 x unloaded, accepted p99 <= 1.5 x $QUEUE / storm throughput + 1 s"
echo "µs/refusal: CPU of the server's non-engine threads during the storm run, per refusal (includes the accepted calls' share)"
exit "$fail"
