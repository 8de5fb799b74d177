#!/usr/bin/env bash
# swin-serve's CPU engine against OpenVINO on this machine (issue 21's targets), in one sitting:
# `peers.py --lower-precision` once for the context (every peer, its own lines), then benches/compare.py:
# the engine (FP32, and bf16 where the CPU has AVX512_BF16) and OpenVINO (FP32, and as shipped when that
# is bf16) in alternating pairs, the batch-8 profile (the linear layers' share of the FMA peak) and
# gRPC Classify at concurrency 1, and one table: the median of the per-pair ratios, PASS/FAIL each.
#
#   benches/compare.sh [--pairs N] [--runs N] [--threads N] [--no-peers] [--no-grpc]
#
# Environment: PYTHON (a python with torch, timm, onnx, onnxruntime, openvino; default python3),
# OFFICIAL (the official models/swin_transformer_v2.py, passed to peers.py as --official; default timm's),
# PEERS (default ../shared/bench/peers.py), CARGO_TARGET_DIR (where the release build goes),
# SWIN_SERVE_BIN (an already built swin-serve to use instead of building release).
# Everything runs on this machine's cores: run it on an otherwise idle machine. Benchmarks measure;
# nothing here gates CI.
set -euo pipefail

PAIRS=3
RUNS=10
THREADS=$(nproc)
PEERS_TABLE=1
GRPC=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --pairs) PAIRS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --no-peers) PEERS_TABLE=0; shift ;;
        --no-grpc) GRPC=0; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if (( PAIRS < 3 )); then echo "note: fewer than 3 pairs: the medians are not what issue 21 asks" >&2; fi

cd "$(dirname "$0")/.."
source benches/lib.sh
PYTHON=${PYTHON:-python3}
PEERS=${PEERS:-../shared/bench/peers.py}
BIN=${SWIN_SERVE_BIN:-}
OUT=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then stop_server; fi
    rm -rf "$OUT"
}
trap cleanup EXIT

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:  $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)," \
    "family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p' | head -1)" \
    "model $(lscpu | sed -n 's/^Model:[[:space:]]*//p' | head -1);" \
    "$(grep -o -w -E 'avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "threads: $THREADS, runs: $RUNS, pairs: $PAIRS"

if [[ -z "$BIN" ]]; then
    echo "== building (release)" >&2
    cargo build --release --bin swin-serve >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/swin-serve"
fi
echo "binary: $BIN ($("$BIN" --version))"
echo

official=()
if [[ -n "${OFFICIAL:-}" ]]; then official=(--official "$OFFICIAL"); fi
if (( PEERS_TABLE )); then
    echo "== peers.py --lower-precision (context: every peer once)" >&2
    echo "peers.py --threads $THREADS --runs $RUNS --lower-precision:"
    "$PYTHON" "$PEERS" --threads "$THREADS" --runs "$RUNS" --lower-precision "${official[@]}" \
        | sed 's/^/  /' || echo "  peers.py failed"
    echo
fi

write_images "$OUT"
server=()
if (( GRPC )); then
    # lib.sh's server (`serve --random-weights 0`, max batch 8), idle between the pairs' gRPC runs
    PORT=$(free_port)
    URL="http://127.0.0.1:$PORT"
    echo "== swin-serve serve --random-weights 0 on $URL" >&2
    start_server
    server=(--server "$URL")
fi
echo "== engine and OpenVINO in $PAIRS alternating pairs" >&2
"$PYTHON" benches/compare.py --bin "$BIN" --peers "$PEERS" "${official[@]}" --pairs "$PAIRS" \
    --runs "$RUNS" --threads "$THREADS" --image "$OUT/image.png" "${server[@]}"
