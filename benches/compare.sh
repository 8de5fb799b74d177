#!/usr/bin/env bash
# The comparison with the peers in one sitting: swin-serve's CPU engine (`swin-serve bench --json`, batch 1
# and 8), its peers (`peers.py` as shipped and with `--ftz`), the engine again, the gRPC path (`swin-serve serve
# --random-weights 0` loaded by `swin-serve bench --server` with a 256×256 PNG, at concurrency 1 and
# at saturation) and the engine once more, then one table of ratios against the targets with PASS/FAIL
# (the gRPC targets against the mean of the two engine runs around the gRPC runs).
#
#   benches/compare.sh [--runs N] [--threads N] [--concurrency N]
#
# Environment: PYTHON (a python with torch, onnx, onnxruntime; default python3), OFFICIAL (path to
# the official models/swin_transformer_v2.py, passed to peers.py as --official; default: timm's),
# PEERS (default ../shared/bench/peers.py), CARGO_TARGET_DIR (where the release build goes),
# SWIN_SERVE_BIN (an already built swin-serve to use instead of building release).
# Everything runs on this machine's cores: run it on an otherwise idle machine.
set -euo pipefail

RUNS=10
THREADS=$(nproc)
CONCURRENCY=16
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --concurrency) CONCURRENCY=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
source benches/lib.sh
PYTHON=${PYTHON:-python3}
PEERS=${PEERS:-../shared/bench/peers.py}
BIN=${SWIN_SERVE_BIN:-}
OUT=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$OUT"
}
trap cleanup EXIT

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:  $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
echo "threads: $THREADS, runs: $RUNS, saturation concurrency: $CONCURRENCY"
echo

if [[ -z "$BIN" ]]; then
    echo "== building (release)" >&2
    cargo build --release --bin swin-serve >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/swin-serve"
fi
echo "binary: $BIN"

# engine_run FILE: the local engine at batch 1 and 8, JSON lines into $OUT/FILE.
engine_run() {
    "$BIN" bench --json --batch 1,8 --runs "$RUNS" --threads "$THREADS" > "$OUT/$1"
}

echo "== swin-serve bench (local engine, batch 1,8)" >&2
engine_run engine.jsonl

peers_args=(--threads "$THREADS" --runs "$RUNS")
if [[ -n "${OFFICIAL:-}" ]]; then peers_args+=(--official "$OFFICIAL"); fi
echo "== peers.py (as shipped)" >&2
"$PYTHON" "$PEERS" "${peers_args[@]}" > "$OUT/peers.jsonl" || echo "peers.py failed" >&2
echo "== peers.py --ftz (tuned)" >&2
"$PYTHON" "$PEERS" "${peers_args[@]}" --ftz > "$OUT/peers-ftz.jsonl" || echo "peers.py --ftz failed" >&2

# The engine again, right before the gRPC runs: targets 3a/3b compare the gRPC path with the engine
# measured next to it (this VM's speed drifts over the minutes the peers take).
echo "== swin-serve bench (local engine again, next to the gRPC runs)" >&2
engine_run engine-again.jsonl

write_images "$OUT"
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
echo "== swin-serve serve --random-weights 0 on $URL" >&2
start_server
echo "== gRPC Classify, concurrency 1" >&2
"$BIN" bench --server "$URL" --rpc classify --image "$OUT/image.png" --concurrency 1 \
    --requests $((RUNS * 5)) --warmup 5 > "$OUT/grpc-1.txt"
echo "== gRPC Classify, concurrency $CONCURRENCY" >&2
"$BIN" bench --server "$URL" --rpc classify --image "$OUT/image.png" --concurrency "$CONCURRENCY" \
    --requests $((RUNS * CONCURRENCY * 2)) --warmup "$CONCURRENCY" > "$OUT/grpc-sat.txt"
stop_server

# And once more right after them: targets 3a/3b divide by the mean of the two engine runs that
# bracket the gRPC runs, so a drift of the VM's speed during those minutes cancels out.
echo "== swin-serve bench (local engine, right after the gRPC runs)" >&2
engine_run engine-after.jsonl

python3 - "$OUT" "$CONCURRENCY" <<'EOF'
import json, os, sys

out, conc = sys.argv[1], int(sys.argv[2])

def jsonl(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows

def grpc(name):
    # the `bench --server` table: rpc conc ok errors img/s mean p50 p90 p99 [codes]
    for line in open(os.path.join(out, name)):
        f = line.split()
        if f and f[0] == "Classify":
            return {"ok": int(f[2]), "errors": int(f[3]), "img_per_s": float(f[4]), "p50_ms": float(f[6])}
    return None

engine = {r["batch"]: r for r in jsonl("engine.jsonl") if r.get("system") == "swin-serve-cpu"}
again = {r["batch"]: r for r in jsonl("engine-again.jsonl") if r.get("system") == "swin-serve-cpu"}
after = {r["batch"]: r for r in jsonl("engine-after.jsonl") if r.get("system") == "swin-serve-cpu"}
shipped, tuned = jsonl("peers.jsonl"), jsonl("peers-ftz.jsonl")
models = lambda rows, batch: [r for r in rows if r.get("batch") == batch]
gemm = [r["median_ms"] for r in shipped + tuned if r.get("system") == "torch-gemm-model-shapes"]
g1, gs = grpc("grpc-1.txt"), grpc("grpc-sat.txt")
e1, e8 = engine.get(1), engine.get(8)

print("figures")
print(f"  {'system':<34} {'batch 1 median ms':>18} {'batch 8 img/s':>14}")
def fig(name, b1, b8):
    print(f"  {name:<34} {b1 if b1 is not None else '-':>18} {b8 if b8 is not None else '-':>14}")
fig("swin-serve-cpu", e1 and e1["median_ms"], e8 and e8["img_per_s"])
def bracket(batch, key):
    # mean of the engine runs right before and right after the gRPC runs
    vals = [r[batch][key] for r in (again, after) if batch in r]
    return sum(vals) / len(vals) if vals else None
for name, rows_ in (("swin-serve-cpu (before gRPC)", again), ("swin-serve-cpu (after gRPC)", after)):
    r1, r8 = rows_.get(1), rows_.get(8)
    fig(name, r1 and r1["median_ms"], r8 and r8["img_per_s"])
a1, a8 = bracket(1, "median_ms"), bracket(8, "img_per_s")
for rows in (shipped, tuned):
    for sysname in dict.fromkeys(r["system"] for r in rows if "batch" in r):
        b1 = [r["median_ms"] for r in models(rows, 1) if r["system"] == sysname]
        b8 = [r["img_per_s"] for r in models(rows, 8) if r["system"] == sysname]
        fig(sysname, b1[0] if b1 else None, b8[0] if b8 else None)
if gemm:
    fig("torch-gemm-model-shapes (best)", min(gemm), None)
if g1:
    print(f"  gRPC Classify c=1: p50 {g1['p50_ms']} ms, {g1['img_per_s']} img/s, {g1['errors']} errors")
if gs:
    print(f"  gRPC Classify c={conc}: {gs['img_per_s']} img/s, p50 {gs['p50_ms']} ms, {gs['errors']} errors")
if e8:
    print(f"  peak RSS after batch 8: {e8.get('peak_rss_mb')} MB; cpu {e8.get('cpu')!r}, {e8.get('isa')}")
print()

best_b1 = min((r["median_ms"] for r in models(tuned, 1)), default=None)
best_b8 = max((r["img_per_s"] for r in models(tuned, 8)), default=None)
rows = []
def target(name, value, bound, ok_if_le, limit_text):
    if value is None or bound is None:
        rows.append((name, "n/a", limit_text, "N/A"))
        return
    ok = value <= bound if ok_if_le else value >= bound
    rows.append((name, f"{value:.3f}", limit_text, "PASS" if ok else "FAIL"))
def div(a, b):
    return None if a is None or b is None or b == 0 else a / b

b1 = e1 and e1["median_ms"]
b8 = e8 and e8["img_per_s"]
target("1a batch-1 latency / torch-gemm-model-shapes", div(b1, min(gemm) if gemm else None), 1.2, True, "<= 1.2")
target("1b batch-1 latency / best tuned peer (--ftz)", div(b1, best_b1), 0.67, True, "<= 0.67")
target("2  batch-8 img/s / best tuned peer (--ftz)", div(b8, best_b8), 1.5, False, ">= 1.5")
target("3a gRPC c=1 p50 / engine batch-1 median", div(g1 and g1["p50_ms"], a1), 1.1, True, "<= 1.1")
target(f"3b gRPC c={conc} img/s / engine batch-8 img/s", div(gs and gs["img_per_s"], a8), 0.95, False, ">= 0.95")
target("4  peak RSS at batch 8, MB", e8 and e8.get("peak_rss_mb"), 300.0, True, "<= 300")
print(f"  {'target':<46} {'value':>7}  {'goal':<8} result")
for name, ratio, goal, result in rows:
    print(f"  {name:<46} {ratio:>7}  {goal:<8} {result}")
EOF
