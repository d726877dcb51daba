#!/usr/bin/env python3
"""The main job on real data, end to end (the README's first command runs this):

1. train a small CNN on scikit-learn's digits (bundled with scikit-learn: nothing is downloaded);
2. quantize it the way users do: eager PTQ with the x86 qconfig (saved as TorchScript) and PT2E
   with torchao's XNNPACK quantizer (saved as .pt2);
3. convert each with the driver through its cfg (cfg/digits_x86.cfg, cfg/digits_xnnpack.cfg),
   the way onecc runs an import driver;
4. run the circles on onert (and on luci-interpreter when ONE's tools are found) over the whole
   held-out set and print float / PyTorch-quantized / circle accuracy, arg-max agreement with
   PyTorch, the max difference in LSB of the output scale, and the conversion time.

    venv/bin/python examples/example.py [WORK_DIR] [--epochs N] [--data FILE.npz]

WORK_DIR defaults to build/example. --data takes another image set: an .npz with ``images``
(N, H, W) and integer ``labels`` (N,). Exit status 0 when every circle's accuracy is within one
image of PyTorch's quantized model and agrees with it on at least 99 % of the images.
"""
import argparse
import os
import subprocess
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)
warnings.filterwarnings("ignore")

import digits  # noqa: E402  (examples/digits.py)

# recipe in digits.RECIPES -> the cfg that converts it; each cfg names its files in WORK_DIR
CFGS = [("eager_x86", "digits_x86.cfg"), ("pt2e_xnnpack", "digits_xnnpack.cfg")]
MIN_AGREEMENT = 0.99


def _shown(path):
    """A path as the README shows it: relative to the repo when inside it."""
    rel = os.path.relpath(path, ROOT)
    return path if rel.startswith("..") else rel


def _pct(x):
    return "%.1f %%" % (100.0 * x)


def convert_with_driver(cfg, work):
    """``one-import-pytorch-quant --config CFG --section one-import-pytorch-quant`` in ``work``,
    as onecc runs an import driver; returns (exit code, seconds)."""
    cmd = [sys.executable, os.path.join(ROOT, "one-import-pytorch-quant"),
           "--config", cfg, "--section", digits.SECTION]
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=work)
    return rc, time.perf_counter() - t


def output_path_of(cfg, work):
    from onelib.pytorch_quant import cfgfile
    return os.path.join(work, cfgfile.read_section(cfg, digits.SECTION)["output_path"])


def input_path_of(cfg, work):
    from onelib.pytorch_quant import cfgfile
    return os.path.join(work, cfgfile.read_section(cfg, digits.SECTION)["input_path"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", nargs="?", default=os.path.join(ROOT, "build", "example"))
    ap.add_argument("--epochs", type=int, default=4, help="training epochs (default 4)")
    ap.add_argument("--data", default=None, help="an .npz with images (N, H, W) and labels (N,)")
    args = ap.parse_args(argv)
    with digits.one_thread():
        return run(args)


def run(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    t_start = time.perf_counter()

    data = digits.load_data(args.data)
    print("1. data: %s, %d training / %d held-out images, upsampled to %dx%d"
          % (data.source, len(data.x_train), len(data.x_test), digits.SIZE, digits.SIZE))
    model, secs = digits.timed(digits.train, data, args.epochs)
    float_logits = digits.predict_float(model, data.x_test)
    float_acc = float(np.mean(np.argmax(float_logits, 1) == data.y_test))
    print("2. trained a small CNN for %d epochs in %.1f s (seeded): float accuracy %s"
          % (args.epochs, secs, _pct(float_acc)))

    cfgs = [(recipe, os.path.join(ROOT, "cfg", name)) for recipe, name in CFGS]
    # the circles' batch: the TorchScript cfg's input_shapes; the PT2E program is exported with it
    batch = digits.cfg_batch(cfgs[0][1])
    print("3. runtime form: %s" % digits.describe_profile(cfgs[0][1]))

    print("4. quantized and converted (driver as onecc runs it, in %s):" % _shown(work))
    rows = []
    for recipe, cfg in cfgs:
        q = digits.RECIPES[recipe](model, data, batch)
        src = q.save(input_path_of(cfg, work))
        rc, conv_secs = convert_with_driver(cfg, work)
        circle = output_path_of(cfg, work)
        print("   %-13s %s -> one-import-pytorch-quant -C cfg/%s -> %s"
              % (q.recipe, os.path.basename(src), os.path.basename(cfg), os.path.basename(circle)))
        if rc != 0:
            print("   conversion failed (exit %d); see %s.log" % (rc, _shown(circle)))
            return rc
        rows.append((q, circle, conv_secs))

    # onert: every chunk of every circle in one child process
    from onelib.pytorch_quant.runtimes import run_onert_many
    chunks, n = digits.batches(data.x_test, batch)
    jobs = [(circle, [c]) for _, circle, _ in rows for c in chunks]
    outs = run_onert_many(jobs)
    for o in outs:
        if isinstance(o, Exception):
            print("onert failed: %s" % o)
            return 1
    luci_exe, luci_why = digits.find_circle_interpreter()

    header = ["recipe", "float", "PyTorch-q", "onert", "agree", "max LSB"]
    if luci_exe:
        header += ["luci-intp", "agree", "max LSB"]
    header += ["convert"]
    table, ok = [header], True
    for k, (q, circle, conv_secs) in enumerate(rows):
        ref = q.run(data.x_test)
        ref_correct = int(np.sum(np.argmax(ref, 1) == data.y_test))
        onert_logits = np.concatenate([o[0] for o in outs[k * len(chunks):(k + 1) * len(chunks)]])[:n]
        results = [digits.compare(onert_logits, ref, data.y_test, q.output_scale)]
        if luci_exe:
            luci = digits.run_chunked(
                lambda c: digits.run_luci_interpreter(luci_exe, circle, c, (batch, data.n_classes)),
                data.x_test, batch)
            results.append(digits.compare(luci, ref, data.y_test, q.output_scale))
        row = [q.recipe, _pct(float_acc), _pct(ref_correct / float(n))]
        for r in results:
            row += [_pct(r.accuracy), _pct(r.agreement), str(r.max_lsb)]
            ok = ok and abs(r.correct - ref_correct) <= 1 and r.agreement >= MIN_AGREEMENT
        row.append("%.1f s" % conv_secs)
        table.append(row)

    print("5. ran on the %d held-out images:" % n)
    print()
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print()
    print("agree: same arg-max as PyTorch's quantized model; max LSB: largest logit difference in steps "
          "of the output scale; convert: the driver process")
    if not luci_exe:
        print("luci-interpreter: skipped, %s" % luci_why)
    print("%s in %.0f s" % ("all circles match PyTorch" if ok else "MISMATCH: a circle differs from PyTorch",
                            time.perf_counter() - t_start))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
