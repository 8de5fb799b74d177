#!/usr/bin/env python3
"""The driver of benches/compare.sh (run that, not this): swin-serve's CPU engine against OpenVINO on this
machine, in alternating pairs, with the targets of issue 21 as PASS/FAIL.

Each pair measures, back to back and in alternating order (the engine first in the 1st, 3rd, … pair, OpenVINO first in
the 2nd, 4th, …, so that a drift of a shared VM's speed cancels in the median):
  * `swin-serve bench engine --json --batch 1,8` in FP32, and OpenVINO FP32 (INFERENCE_PRECISION_HINT f32)
    at batch 1 and 8, exactly as ../shared/bench/peers.py runs it (its `build` and `timed` are imported);
  * with --precision bf16 where the CPU has AVX512_BF16, and OpenVINO as shipped when that is bf16;
  * `bench engine --batch 8 --profile` (the linear layers' share of the FMA peak);
  * `bench server --rpc classify --concurrency 1` against `--server` (compare.sh starts one with lib.sh).
Every target is the median of its per-pair ratios. Prints the per-pair figures, then the table.
"""
import argparse, importlib.util, json, os, statistics, subprocess, warnings

# SwinV2-T/8 @256: (tokens, channels, depth) per stage; the profile's operations that are linear
# layers, and their FLOP per image (2·m·k·n), so that the profile's milliseconds give their GFLOP/s.
STAGES = [(4096, 96, 2), (1024, 192, 2), (256, 384, 6), (64, 768, 2)]


def linear_flop_per_image():
    f = {"qkv": 0, "proj+norm1": 0, "mlp": 0, "patch_merging": 0, "patch_embed": 2 * 4096 * 48 * 96}
    for i, (t, c, d) in enumerate(STAGES):
        f["qkv"] += 2 * t * c * 3 * c * d
        f["proj+norm1"] += 2 * t * c * c * d
        f["mlp"] += 2 * 2 * t * c * 4 * c * d
        if i < 3:
            f["patch_merging"] += 2 * (t // 4) * 4 * c * 2 * c
    return f


LINEAR_OPS = {"qkv": "qkv", "proj+norm1": "proj+norm1", "mlp+norm2 (fused)": "mlp", "fc1+gelu": "mlp",
              "fc2+norm2": "mlp", "patch_merging": "patch_merging", "patch_embed": "patch_embed"}


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--peers", required=True)
    ap.add_argument("--official")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--image", required=True)
    ap.add_argument("--server", help="a running `serve --random-weights 0` (gRPC URL); without it, no gRPC figure")
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location("peers", args.peers)
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    import torch
    import openvino as ov

    warnings.filterwarnings("ignore")  # torch.jit's deprecation and tracer warnings from convert_model

    torch.set_num_threads(args.threads)
    name, model = peers.build(args.official, None)
    core = ov.Core()
    ovm = ov.convert_model(model, example_input=torch.randn(1, 3, 256, 256),
                           input=[ov.PartialShape([-1, 3, 256, 256])])
    shipped = core.get_property("CPU", "INFERENCE_PRECISION_HINT").to_string()
    modes = {"fp32": {"INFERENCE_PRECISION_HINT": "f32"}}
    if shipped == "bf16":
        modes["bf16"] = {}
    compiled = {}
    for prec, cfg in modes.items():
        for batch in (1, 8):
            cm = core.compile_model(ovm, "CPU", dict(cfg, PERFORMANCE_HINT="LATENCY",
                                                     INFERENCE_NUM_THREADS=args.threads))
            x = torch.randn(batch, 3, 256, 256).numpy()
            req = cm.create_infer_request()
            compiled[(prec, batch)] = (cm, req, x)

    def openvino(prec):
        res = {}
        for batch in (1, 8):
            _, req, x = compiled[(prec, batch)]
            med, _, _ = peers.timed(lambda: req.infer({0: x}), args.runs if batch == 1 else max(3, args.runs // 2))
            res[batch] = med * 1e3
        return {"b1_ms": res[1], "b8_img_s": 8e3 / res[8]}

    def engine(prec):
        rows = {r["batch"]: r for r in run_json([args.bin, "bench", "engine", "--json", "--batch", "1,8",
                                                  "--runs", str(args.runs), "--threads", str(args.threads),
                                                  "--precision", prec]) if r.get("system") == "swin-serve-cpu"}
        return {"b1_ms": rows[1]["median_ms"], "b8_img_s": rows[8]["img_per_s"], "rss_mb": rows[8]["peak_rss_mb"],
                "gflops_b8": rows[8]["gflops"], "peak": rows[8].get("fma_peak_gflops")}

    flop = linear_flop_per_image()

    def linear_gflops():
        """The linear layers' GFLOP/s at batch 8 from one profiled run, and the FMA peak that run measured."""
        rows = run_json([args.bin, "bench", "engine", "--json", "--profile", "--batch", "8", "--runs", "3",
                         "--threads", str(args.threads)])
        fig = next(r for r in rows if r.get("system") == "swin-serve-cpu")
        prof = next(r for r in rows if r.get("system") == "swin-serve-cpu-profile")
        ms = sum(v for k, v in prof["operations"].items() if k in LINEAR_OPS)
        return 8 * sum(flop.values()) / (ms * 1e-3) / 1e9, fig.get("fma_peak_gflops")

    bf16 = "bf16" in modes and subprocess.run([args.bin, "bench", "engine", "--batch", "1", "--runs", "1",
                                              "--warmup", "0", "--precision", "bf16"],
                                             capture_output=True).returncode == 0

    def grpc_c1():
        out = subprocess.run([args.bin, "bench", "server", "--server", args.server, "--rpc", "classify", "--image",
                              args.image, "--concurrency", "1", "--requests", str(args.runs * 3), "--warmup", "3"],
                             check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            f = line.split()
            if f and f[0] == "Classify":
                return float(f[6])  # p50 ms
        return None

    pairs = []
    for i in range(args.pairs):
        p = {}
        steps = [lambda: p.update(fp32=engine("fp32")), lambda: p.update(ov_fp32=openvino("fp32"))]
        if bf16:
            steps += [lambda: p.update(bf16=engine("bf16")), lambda: p.update(ov_bf16=openvino("bf16"))]
        if i % 2:
            steps = [steps[j ^ 1] for j in range(len(steps))]
        for step in steps:
            step()
        p["linear_gflops_b8"], p["peak_profile"] = linear_gflops()
        if args.server:
            p["grpc_c1_ms"] = grpc_c1()
            p["ov_fp32_again"] = openvino("fp32")
        pairs.append(p)
        print(f"pair {i + 1}: " + json.dumps(p), flush=True)

    # The machine's FMA peak: the highest any `bench` run of this sitting measured (a shared VM's
    # neighbour can halve one measurement, which would read as more than 100% of the peak).
    peak = max((v for p in pairs for v in (p["fp32"].get("peak"), p.get("bf16", {}).get("peak"),
                                            p.get("peak_profile")) if v), default=None)

    def med(f):
        vals = [v for v in (f(p) for p in pairs) if v is not None]
        return statistics.median(vals) if vals else None

    targets = [
        ("1a FP32 batch-1 ms / OpenVINO FP32 batch-1 ms", lambda p: p["fp32"]["b1_ms"] / p["ov_fp32"]["b1_ms"], 0.75, True),
        ("1b gRPC c=1 p50 ms / OpenVINO FP32 batch-1 ms", lambda p: p.get("grpc_c1_ms") and
         p["grpc_c1_ms"] / p["ov_fp32_again"]["b1_ms"], 0.8, True),
        ("2a FP32 batch-8 img/s / OpenVINO FP32 batch-8", lambda p: p["fp32"]["b8_img_s"] / p["ov_fp32"]["b8_img_s"], 1.5, False),
        ("2b FP32 batch-8 img/s / own batch-1 img/s", lambda p: p["fp32"]["b8_img_s"] * p["fp32"]["b1_ms"] / 1e3, 1.15, False),
        ("3a whole pass at batch 8, share of FMA peak", lambda p: peak and p["fp32"]["gflops_b8"] / peak, 0.70, False),
        ("3b linear layers at batch 8, share of FMA peak", lambda p: peak and p["linear_gflops_b8"] / peak, 0.85, False),
        ("4a bf16 batch-8 img/s / OpenVINO bf16 batch-8", lambda p: "bf16" in p and
         p["bf16"]["b8_img_s"] / p["ov_bf16"]["b8_img_s"], 1.3, False),
        ("4b bf16 batch-1 ms / OpenVINO bf16 batch-1 ms", lambda p: "bf16" in p and
         p["bf16"]["b1_ms"] / p["ov_bf16"]["b1_ms"], 0.8, True),
        ("5a peak RSS at batch 8, FP32, MB", lambda p: p["fp32"]["rss_mb"], 300, True),
        ("5b peak RSS at batch 8, bf16, MB", lambda p: "bf16" in p and p["bf16"]["rss_mb"], 300, True),
    ]
    print()
    print(f"figures, median of {len(pairs)} pairs")
    for label, key in (("swin-serve FP32", "fp32"), ("OpenVINO FP32", "ov_fp32"), ("swin-serve bf16", "bf16"),
                       ("OpenVINO as shipped (bf16)", "ov_bf16")):
        b1, b8 = med(lambda p: key in p and p[key]["b1_ms"]), med(lambda p: key in p and p[key]["b8_img_s"])
        if b1:
            print(f"  {label:<28} batch 1 {b1:8.2f} ms   batch 8 {b8:7.2f} img/s")
    g = med(lambda p: p.get("grpc_c1_ms"))
    if g:
        print(f"  {'gRPC Classify c=1 (FP32)':<28} p50 {g:8.2f} ms")
    if peak:
        print(f"  FP32 FMA peak (the highest measured in this sitting): {peak:.1f} GFLOP/s")
    if not bf16:
        why = "OpenVINO's default here is " + shipped if shipped != "bf16" else "the engine refused --precision bf16"
        print(f"  bf16 targets not measured: {why}")
    print()
    print(f"  {'target':<50} {'median':>8}  {'goal':<7} result")
    failed = 0
    for name, f, bound, le in targets:
        v = med(lambda p: f(p) or None)
        if v is None:
            print(f"  {name:<50} {'n/a':>8}  {('<= ' if le else '>= ') + str(bound):<7} N/A")
            continue
        ok = v <= bound if le else v >= bound
        failed += not ok
        print(f"  {name:<50} {v:8.3f}  {('<= ' if le else '>= ') + str(bound):<7} {'PASS' if ok else 'FAIL'}")
    print()
    print(f"{'all targets met' if not failed else f'{failed} target(s) not met'}")


if __name__ == "__main__":
    main()
