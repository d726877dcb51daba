#!/usr/bin/env python3
"""The full-size sweep's networks (scripts/fullsize_sweep.py) judged by ONE's own tools.

    ONE_BIN_DIR=/path/to/one/bin venv/bin/python scripts/one_tools_sweep.py [--cases a:r,...]

Per network and recipe, both profiles are converted and each column is what a ONE tool said:

* ``float``: ops the luci profile left reading or writing float (0 = fully quantized);
* ``fq``: ``circle-quantizer --fake_quantize`` on the luci circle (ok / the tool's error);
* ``O1``: ``circle2circle`` with every pass of ``CONSTANT.O1`` (read from ONE_BIN_DIR's onelib);
* ``luci``: luci's QuantizedModelVerifier through ``luci-verify-quant`` (our small program
  linked with luci, in ONE_BIN_DIR when built), in the granularity read off the model;
* ``intp``: the onert profile's circle on ``circle-interpreter`` (luci-interpreter): max LSB of
  the output against PyTorch's own quantized output on the same input;
* ``onert``: the same circle on onert, max LSB;
* ``onecc``: ``onecc -C`` with this driver, one-optimize (O1) and one-pack, when onecc is there
  (the packed circle run on onert gives the imported circle's outputs exactly: "same").
Columns whose tool is missing print "-".
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), HERE]

import numpy as np  # noqa: E402

import fullsize_sweep as S  # noqa: E402
from one_layout import installed_bin  # noqa: E402

BIN = os.environ.get("ONE_BIN_DIR", "")


def tool(name):
    p = os.path.join(BIN, name)
    return p if BIN and os.path.isfile(p) and os.access(p, os.X_OK) else None


def o1_flags():
    spec = importlib.util.spec_from_file_location("one_constant", os.path.join(BIN, "onelib", "constant.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return ["--" + p for p in mod.CONSTANT.O1]


def run(cmd, cwd=None):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, cwd=cwd, timeout=1800)
    lines = [ln for ln in p.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
    return p.returncode, (lines[-1][:90] if lines else "")


def verdict(rc_msg):
    rc, msg = rc_msg
    return "ok" if rc == 0 else "FAIL(%s)" % msg


def float_ops(graph):
    ins, outs = set(id(t) for t in graph.inputs), set(id(t) for t in graph.outputs)
    n = 0
    for op in graph.ops:
        if (op.kind == "QUANTIZE" and id(op.inputs[0]) in ins) or (op.kind == "DEQUANTIZE" and id(op.outputs[0]) in outs):
            continue
        if any(t.qparams is None and t.dtype == "float32" for t in op.inputs + op.outputs
               if t is not None and not t.is_const):
            n += 1
    return n


def max_lsb(refs, outs, oq):
    worst = 0
    for want, got, (s, _) in zip(refs, outs, oq):
        d = np.abs(np.asarray(got, np.float64).reshape(want.shape) - want.astype(np.float64)).max()
        worst = max(worst, int(np.rint(d / s)) if s else -1)
    return worst


def onecc_pipeline(model_path, shape, x, folder):
    """onecc -C: import (onert profile) -> one-optimize O1 -> one-pack; 'same' when the packed
    circle gives the imported circle's outputs on onert."""
    from onelib.pytorch_quant import runtimes
    work = os.path.join(folder, "onecc")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ext = os.path.splitext(model_path)[1]
    shutil.copy(model_path, os.path.join(work, "model_q" + ext))
    cfg = ("[onecc]\none-import-pytorch-quant=True\none-optimize=True\none-pack=True\ninclude=O1\n\n"
           "[one-import-pytorch-quant]\ninput_path=model_q%s\noutput_path=model_q.circle\nprofile=onert\n%s\n"
           "[one-optimize]\ninput_path=model_q.circle\noutput_path=model_q.opt.circle\n\n"
           "[one-pack]\ninput_path=model_q.opt.circle\noutput_path=model_q_pack\n"
           % (ext, "input_shapes=%s\n" % ",".join(map(str, shape)) if ext == ".pt" else ""))
    with open(os.path.join(work, "p.cfg"), "w") as f:
        f.write(cfg)
    b = installed_bin(BIN, work)
    rc, msg = run([os.path.join(b, "onecc"), "-C", "p.cfg"], cwd=work)
    if rc != 0:
        return "FAIL(%s)" % msg
    packed = [os.path.join(d, n) for d, _, ns in os.walk(os.path.join(work, "model_q_pack"))
              for n in ns if n.endswith(".circle")]
    if not packed:
        return "FAIL(no packed circle)"
    a = runtimes.run_onert(os.path.join(work, "model_q.circle"), [x])
    p = runtimes.run_onert(packed[0], [x])
    same = all(np.array_equal(u, v) for u, v in zip(a, p))
    return "ok, same" if same else "ok, DIFFERENT"


def judge_case(arch, recipe, folder, calib):
    from onelib.pytorch_quant import api, runtimes, verify
    c = S.saved_case(arch, recipe, folder, calib)
    path, x, refs, shape = c["path"], c["x"], c["refs"], c["shape"]
    opts = dict(input_shapes=[list(shape)]) if path.endswith(".pt") else {}
    row = {"net": arch, "recipe": recipe}
    t0 = time.time()
    luci = api.convert(path, api.ConvertOptions(profile="luci", **opts))
    row["convert_s"] = time.time() - t0
    onert = api.convert(path, api.ConvertOptions(profile="onert", **opts))
    row["float"] = float_ops(luci.graph)
    lpath = os.path.join(folder, "%s_%s_luci.circle" % (arch, recipe))
    opath = os.path.join(folder, "%s_%s_onert.circle" % (arch, recipe))
    luci.save(lpath)
    onert.save(opath)
    row["fq"] = verdict(run([tool("circle-quantizer"), "--fake_quantize", lpath, lpath + ".fq"])) \
        if tool("circle-quantizer") else "-"
    row["O1"] = verdict(run([tool("circle2circle")] + o1_flags() + [lpath, lpath + ".o1"])) \
        if tool("circle2circle") and os.path.isfile(os.path.join(BIN, "onelib", "constant.py")) else "-"
    gran = verify.granularity_of(luci.circle) or "layer"
    row["luci"] = ("%s %s" % (gran, verdict(run([tool("luci-verify-quant"), lpath, "u8", gran])))) \
        if tool("luci-verify-quant") else "-"
    oq = S._output_qparams(onert.graph)
    if tool("circle-interpreter"):
        try:
            row["intp"] = str(max_lsb(refs, runtimes.run_luci_interpreter(opath, [x], BIN), oq))
        except runtimes.RuntimeFailure as e:
            row["intp"] = "FAIL(%s)" % str(e).splitlines()[0][:80]
    else:
        row["intp"] = "-"
    try:
        row["onert"] = str(max_lsb(refs, runtimes.run_onert(opath, [x]), oq))
    except runtimes.RuntimeFailure as e:
        row["onert"] = "FAIL(%s)" % str(e).splitlines()[0][:80]
    row["onecc"] = onecc_pipeline(path, shape, x, folder) if tool("onecc") else "-"
    return row


COLS = ("net", "recipe", "float", "fq", "O1", "luci", "intp", "onert", "onecc")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="comma list of arch:recipe (default: the full-size sweep's)")
    ap.add_argument("--calib", type=int, default=2)
    args = ap.parse_args()
    if not tool("circle-quantizer"):
        print("one_tools_sweep.py: ONE_BIN_DIR must name a ONE bin/ with circle-quantizer", file=sys.stderr)
        return 2
    cases = [tuple(c.split(":")) for c in args.cases.split(",") if c] or S.DEFAULT_CASES
    print("| " + " | ".join(COLS) + " |")
    print("|" + "---|" * len(COLS))
    bad = 0
    with tempfile.TemporaryDirectory(prefix="one_tools_sweep_") as tmp:
        for arch, recipe in cases:
            try:
                row = judge_case(arch, recipe, tmp, args.calib)
            except Exception as e:   # one broken case must not hide the others
                row = {"net": arch, "recipe": recipe, "float": "ERROR %s: %s" % (type(e).__name__, str(e)[:120])}
            bad += any(str(row.get(c, "")).startswith(("FAIL", "ERROR")) for c in COLS)
            print("| " + " | ".join(str(row.get(c, "-")) for c in COLS) + " |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
