#!/usr/bin/env python3
"""The .pt2 importer against TICO's pt2-to-circle on the same files, measured and printed.

    venv/bin/python scripts/bench_pt2.py [--model mobilenet_large] [--recipes xnnpack,xnnpack_w128,x86]
                                         [--repeat 3] [--keep DIR]

For each recipe: quantize the largest test model (a MobileNetV2-like stack of inverted
residuals, tests/pt2models.py) with PT2E, export and save it, then time

* our conversion in this process (torch already imported; median of --repeat runs),
* our conversion in a fresh process with torch installed, and in one where ``import torch``
  fails (the .pt2 reader needs neither): the conversion alone and the whole process,
* TICO 0.3.0 on the same file: its ``pt2-to-circle`` console script (whole process) and
  ``tico.convert_from_pt2`` in this process,

and list the activation tensors each converter left in float32 (count per circle op, names).
"""
import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
warnings.filterwarnings("ignore")

# run in a child: convert argv[3] -> argv[4], print the conversion time; argv[1] is put first on
# sys.path (a directory whose torch/__init__.py raises ImportError, or '' for none)
CHILD = r"""
import sys, time
block, root, src, dst = sys.argv[1:5]
sys.path[:0] = ([block] if block else []) + [root]
t0 = time.perf_counter()
from onelib.pytorch_quant import api
conv = api.convert(src)
with open(dst, "wb") as f:
    f.write(conv.circle)
print("convert_s=%.4f torch_loaded=%s" % (time.perf_counter() - t0, "torch" in sys.modules))
"""


def child(src, dst, block):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, block, ROOT, src, dst],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit("child conversion failed:\n" + proc.stderr[-3000:])
    fields = dict(kv.split("=") for kv in proc.stdout.split())
    return float(fields["convert_s"]), wall, fields["torch_loaded"] == "True"


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def float_outputs(path):
    """[(circle op, output tensor name, input dtype)] of every op output stored as float32 (an
    integer input dtype marks a mixed op: integer in, float out), the op count, and the graph's
    input / output dtypes."""
    from circle_schema.v0_10.circle.BuiltinOperator import BuiltinOperator
    from circle_schema.v0_10.circle.Model import Model
    from circle_schema.v0_10.circle.TensorType import TensorType
    op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}
    with open(path, "rb") as f:
        m = Model.GetRootAsModel(f.read(), 0)
    g = m.Subgraphs(0)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    out = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        first = g.Tensors(op.Inputs(0)).Type() if op.InputsLength() and op.Inputs(0) >= 0 else None
        for j in range(op.OutputsLength()):
            t = g.Tensors(op.Outputs(j))
            if t.Type() == TensorType.FLOAT32:
                out.append((op_names.get(codes[op.OpcodeIndex()], "?"), t.Name().decode(),
                            type_names.get(first, "?")))
    io = ["/".join(type_names[g.Tensors(get(k)).Type()] for k in range(n))
          for get, n in ((g.Inputs, g.InputsLength()), (g.Outputs, g.OutputsLength()))]
    return out, g.OperatorsLength(), io


def describe_float(label, path):
    floats, n_ops, io = float_outputs(path)
    per_kind = collections.Counter(k for k, _, _ in floats)
    mixed = sum(1 for _, _, i in floats if i != "FLOAT32")
    print("  %-5s %3d ops, I/O %s -> %s, %2d float32 op outputs (%d of them from integer inputs "
          "without DEQUANTIZE): %s" % (label, n_ops, io[0], io[1], len(floats), mixed - sum(
              1 for k, _, _ in floats if k == "DEQUANTIZE"),
              ", ".join("%s %d" % kv for kv in sorted(per_kind.items())) or "-"))
    for kind, name, first in floats:
        print("          %-18s %-48s input %s" % (kind, name, first))
    return per_kind


def bench(recipe, model, repeat, work):
    import pt2models as M
    from onelib.pytorch_quant import api

    print("\n== %s, %s" % (model, recipe))
    t0 = time.perf_counter()
    q = M.quantize(model, recipe)
    src = q.save(os.path.join(work, "%s_%s.pt2" % (model, recipe)))
    print("  built and saved in %.1f s: %s (%.2f MB)" % (time.perf_counter() - t0, os.path.basename(src),
                                                          os.path.getsize(src) / 1e6))
    ours = os.path.join(work, "%s_%s.ours.circle" % (model, recipe))
    conv = api.convert(src)
    with open(ours, "wb") as f:
        f.write(conv.circle)
    t_in = median_time(lambda: api.convert(src), repeat)

    block = os.path.join(work, "no_torch")
    os.makedirs(os.path.join(block, "torch"), exist_ok=True)
    with open(os.path.join(block, "torch", "__init__.py"), "w") as f:
        f.write("raise ImportError('torch is blocked for this benchmark')\n")
    with_torch = [child(src, ours + ".1", "") for _ in range(repeat)]
    no_torch = [child(src, ours + ".2", block) for _ in range(repeat)]
    same = open(ours + ".1", "rb").read() == open(ours + ".2", "rb").read() == conv.circle

    tico_out = os.path.join(work, "%s_%s.tico.circle" % (model, recipe))
    script = shutil.which("pt2-to-circle") or os.path.join(os.path.dirname(sys.executable), "pt2-to-circle")
    t0 = time.perf_counter()
    proc = subprocess.run([script, "-i", src, "-o", tico_out], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    t_tico_proc = time.perf_counter() - t0
    tico_error = None
    t_tico_in = None
    if proc.returncode != 0 or not os.path.exists(tico_out):
        tico_error = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
    else:
        import tico
        t_tico_in = median_time(lambda: tico.convert_from_pt2(src), 1)

    print("  ours, in this process (torch loaded):  %7.3f s  (median of %d)" % (t_in, repeat))
    print("  ours, fresh process, torch installed:  %7.3f s convert, %6.2f s process  (torch imported: %s)"
          % (statistics.median(c for c, _, _ in with_torch), statistics.median(w for _, w, _ in with_torch),
             any(t for _, _, t in with_torch)))
    print("  ours, fresh process, torch blocked:    %7.3f s convert, %6.2f s process  (same bytes: %s)"
          % (statistics.median(c for c, _, _ in no_torch), statistics.median(w for _, w, _ in no_torch), same))
    if tico_error:
        print("  TICO pt2-to-circle:                    failed after %.2f s: %s" % (t_tico_proc, tico_error))
    else:
        print("  TICO pt2-to-circle, fresh process:               %6.2f s process" % t_tico_proc)
        print("  TICO convert_from_pt2, in this process: %7.3f s" % t_tico_in)
    print("  float32 activations (op outputs), ours vs TICO:")
    describe_float("ours", ours)
    if not tico_error:
        describe_float("TICO", tico_out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mobilenet_large")
    p.add_argument("--recipes", default="xnnpack,xnnpack_w128,x86",
                   help="comma-separated recipes from tests/pt2models.py RECIPES")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--keep", help="write the .pt2 and .circle files here (default: a temp dir)")
    args = p.parse_args()
    import torch
    print("torch %s, python %s, %d CPU(s)" % (torch.__version__, sys.version.split()[0], os.cpu_count()))
    work = args.keep or tempfile.mkdtemp(prefix="bench_pt2_")
    os.makedirs(work, exist_ok=True)
    try:
        for recipe in args.recipes.split(","):
            bench(recipe.strip(), args.model, args.repeat, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
