#!/usr/bin/env python3
"""Full-size networks, quantized the standard ways, converted and run: a sweep table.

    venv/bin/python scripts/fullsize_sweep.py [--cases mobilenet_v2:ptq_x86,resnet18:pt2e_xnnpack]
                                              [--list] [--keep DIR] [--calib 3]

Each network is written here in code the way torchvision's *quantizable* models are (random
init, BN with non-trivial statistics): QuantStub/DeQuantStub, FloatFunctional add/add_relu/mul/
cat, torch.flatten, F.adaptive_avg_pool2d, x.mean, channel shuffle via view/transpose/contiguous/
view, nn.Hardsigmoid in SE, max_pool2d with ceil_mode, dropout. Conv-BN(-ReLU) are fused as
torchvision's ``fuse_model`` does. Recipes:

* ``ptq_x86`` / ``ptq_qnnpack``: eager PTQ with that engine's default qconfig;
* ``fx_x86``: FX ``prepare_fx``/``convert_fx`` with the x86 qconfig mapping;
* ``pt2e_xnnpack``: torch.export (strict=True) + torchao's XNNPACK quantizer (per-channel),
  saved with torch.export.save.

TorchScript results are traced and saved; every file is converted with ``api.convert``
(``fc_as_conv=True`` so onert computes per-channel Linear right), run on onert (TICO's reference
runtime where ``runtimes.onert_unreliable`` says onert cannot be trusted, or onert refuses), and
compared with PyTorch's own quantized output on the same input (codes on the input grid): max
LSB of PyTorch's output scale and top-1 agreement (per pixel for segmentation, per anchor for
the SSD head). "pt spread" is PyTorch against itself: the same TorchScript file and input run
on its other quantized engine (x86 <-> qnnpack), as max LSB / top-1 agreement.

The networks: scripts/fullsize_nets.py and scripts/fullsize_models.py (ARCHS, the recipes); one
case's conversion, run and comparison: scripts/fullsize_run.py.
"""
import argparse
import os
import sys
import tempfile
import time
import traceback

# the names other scripts use as ``fullsize_sweep.NAME``
from fullsize_nets import init_params  # noqa: F401
from fullsize_models import ARCHS, DEFAULT_CASES, DENSE, PER_PIXEL, quantize  # noqa: F401
from fullsize_run import _output_qparams, run_case, saved_case  # noqa: F401


def fmt_row(r):
    if r.get("convert_s") is None:
        return "%-20s %-13s %s" % (r["arch"], r["recipe"], "ERROR: " + (r["error"] or "")[:160])
    spread = "-" if r.get("spread_lsb") is None else "%d/%.1f%%" % (r["spread_lsb"], 100 * r["spread_top1"])
    return "%-20s %-13s %8.2f %9.0f %5d %7s %7s %-6s %-12s %s" % (
        r["arch"], r["recipe"], r["convert_s"], r["circle_kb"], r["ops"], r.get("max_lsb", "-"),
        "-" if r.get("top1") is None else "%.1f%%" % (100 * r["top1"]), r.get("runtime", "-"), spread,
        ("ERROR: " + r["error"][:120]) if r["error"] else (r.get("runtime_note") or "")[:80])


HEADER = "%-20s %-13s %8s %9s %5s %7s %7s %-6s %-12s %s" % (
    "network", "recipe", "conv s", "circle kB", "ops", "maxLSB", "top-1", "rt", "pt spread",
    "error / note")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="comma list of arch:recipe (default: the whole sweep)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", default="", help="keep the saved models in this folder")
    ap.add_argument("--calib", type=int, default=3)
    args = ap.parse_args()
    cases = [tuple(c.split(":")) for c in args.cases.split(",") if c] or DEFAULT_CASES
    if args.list:
        for c in cases:
            print("%s:%s" % c)
        return 0
    print(HEADER)
    sys.stdout.flush()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        if args.keep:
            os.makedirs(folder, exist_ok=True)
        for arch, recipe in cases:
            t0 = time.time()
            try:
                r = run_case(arch, recipe, folder, args.calib)
            except Exception as e:
                r = {"arch": arch, "recipe": recipe, "error": "%s: %s" % (type(e).__name__, str(e).strip()),
                     "trace": traceback.format_exc()}
            r["total_s"] = time.time() - t0
            results.append(r)
            print(fmt_row(r))
            if r.get("trace") and os.environ.get("SWEEP_TRACE"):
                print(r["trace"])
            sys.stdout.flush()
    def short(r):
        # random weights leave near-ties in per-pixel / per-anchor scores: PyTorch's own two engines
        # disagree there too, so a top-1 below 100% counts only when it is below PyTorch's spread
        want = min(1.0, r.get("spread_top1", 1.0))
        if r["arch"] in DENSE:
            want -= 0.01   # a few pixels / anchors either way
        return r.get("top1", 1.0) < want
    bad = [r for r in results if r["error"] or short(r)]
    print("\n%d cases, %d with an error or a top-1 agreement below PyTorch's own engine spread"
          % (len(results), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
