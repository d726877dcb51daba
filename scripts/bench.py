#!/usr/bin/env python3
"""The driver against its floor, in CPU time and peak memory (the README's table comes from this).

    venv/bin/python scripts/bench.py [--repeat 5] [--models resnet50,mobilenet_v2,inception_v3,resnet50_pt2]
                                     [--keep DIR]

Each model is built in code (scripts/fullsize_sweep.py: full size, random weights, eager PTQ x86;
``resnet50_pt2``: PT2E XNNPACK), saved once, then run in fresh processes, interleaved round by round
(floor, driver, floor, driver, ...), so that both see the same load:

- TorchScript: the floor is ``import torch; torch.jit.load(file)``, which any reader of the file
  pays; the driver is ``one-import-pytorch-quant -i file -o out.circle --input_shapes ...`` (the
  conversion, the built-in check and the atomic write).
- ``.pt2``: the driver runs with torch blocked (a ``torch`` package that raises ImportError on
  PYTHONPATH); the floor is ``import numpy``.

CPU time is user + system time of the child (``os.wait4``), which a busy machine inflates far less
than wall time; peak RSS is the child's ``ru_maxrss``. Medians over ``--repeat`` rounds.

The driver runs torch with one OpenMP thread unless OMP_NUM_THREADS says otherwise; the floor
runs as the environment has it (on a busy machine its idle threads spin: its CPU time varies by
a second from run to run). ``--threads 1`` runs both with one thread: the like-for-like overhead.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DRIVER = os.path.join(ROOT, "one-import-pytorch-quant")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), HERE]
warnings.filterwarnings("ignore")

# name -> (fullsize_sweep architecture, recipe)
MODELS = {
    "resnet50": ("resnet50", "ptq_x86"),
    "mobilenet_v2": ("mobilenet_v2", "ptq_x86"),
    "inception_v3": ("inception_v3", "ptq_x86"),
    "googlenet": ("googlenet", "ptq_x86"),
    "resnet50_pt2": ("resnet50", "pt2e_xnnpack"),
}


def model_file(name, folder):
    """(path, input shape) of model ``name`` saved in ``folder``."""
    arch, recipe = MODELS[name]
    hw = 299 if arch == "inception_v3" else 224
    return os.path.join(folder, name + (".pt2" if recipe.startswith("pt2e") else ".pt")), (1, 3, hw, hw)


def build(name, folder):
    """Quantize and save ``name`` (once: an existing file is reused)."""
    arch, recipe = MODELS[name]
    pt2 = recipe.startswith("pt2e")
    path, shape = model_file(name, folder)
    if not os.path.exists(path):
        import torch
        import fullsize_sweep as S
        factory, hw = S.ARCHS[arch]
        assert shape == (1, 3, hw, hw)
        import qmodels as Q
        torch.manual_seed(0)
        q, engine = S.quantize(S.init_params(factory(), 0), recipe, shape, 3)
        if pt2:
            torch.export.save(q, path)
        else:
            Q.trace_and_save(q, shape, path, engine=engine)


def run(cmd, env=None):
    """(CPU seconds, peak RSS MB) of one child process; fails loudly if it fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit("failed (%s): %s\n%s" % (proc.returncode, " ".join(cmd), err.decode(errors="replace")[-2000:]))
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def commands(path, shape, out, block):
    """(floor command, driver command, driver environment) for one model file."""
    if path.endswith(".pt2"):
        env = dict(os.environ, PYTHONPATH=block)
        floor = [sys.executable, "-c", "import numpy"]
        return floor, [DRIVER, "-i", path, "-o", out], env
    floor = [sys.executable, "-c", "import sys, torch; torch.jit.load(sys.argv[1])", path]
    return floor, [DRIVER, "-i", path, "-o", out, "--input_shapes", ",".join(map(str, shape))], None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default="resnet50,mobilenet_v2,inception_v3,resnet50_pt2")
    ap.add_argument("--keep", default="", help="save the models in (and reuse them from) this folder")
    ap.add_argument("--threads", default="", help="OMP_NUM_THREADS for the floor and the driver alike "
                    "(default: the floor as the environment has it; the driver uses 1 unless told)")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    if args.build_only:
        for n in names:
            build(n, args.keep)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        if args.threads:
            os.environ["OMP_NUM_THREADS"] = args.threads
        block = os.path.join(tmp, "no_torch")
        os.makedirs(os.path.join(block, "torch"))
        with open(os.path.join(block, "torch", "__init__.py"), "w") as f:
            f.write("raise ImportError('torch is blocked for this benchmark')\n")
        # built in a child: a forked child starts with its parent's peak RSS, so the parent that
        # launches the measured runs must stay small (it never imports torch)
        subprocess.run([sys.executable, __file__, "--build-only", "--keep", folder, "--models", ",".join(names)],
                       check=True, stdout=subprocess.DEVNULL)
        files = {n: model_file(n, folder) for n in names}
        runs = {n: {"floor": [], "driver": []} for n in names}
        for _ in range(args.repeat):
            for n in names:   # interleaved: each round runs every floor next to its driver
                path, shape = files[n]
                floor, driver, env = commands(path, shape, os.path.join(tmp, n + ".circle"), block)
                runs[n]["floor"].append(run(floor))
                runs[n]["driver"].append(run(driver, env))
        head = ("model", "file MB", "circle MB", "floor CPU s", "driver CPU s", "over s", "ratio",
                "floor RSS MB", "driver RSS MB", "over MB")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for n in names:
            path, _ = files[n]
            f_cpu = statistics.median(c for c, _ in runs[n]["floor"])
            d_cpu = statistics.median(c for c, _ in runs[n]["driver"])
            f_rss = statistics.median(r for _, r in runs[n]["floor"])
            d_rss = statistics.median(r for _, r in runs[n]["driver"])
            label = n + (" (no torch; floor: import numpy)" if path.endswith(".pt2") else "")
            print("| %s | %.1f | %.1f | %.2f | %.2f | %+.2f | %.2f | %.0f | %.0f | %+.0f |" % (
                label, os.path.getsize(path) / 1e6, os.path.getsize(os.path.join(tmp, n + ".circle")) / 1e6,
                f_cpu, d_cpu, d_cpu - f_cpu, d_cpu / f_cpu, f_rss, d_rss, d_rss - f_rss))
            sys.stdout.flush()
        print("\nmedians of %d interleaved rounds; every run: %s" % (args.repeat, ", ".join(
            "%s floor %s driver %s" % (n, "/".join("%.2f" % c for c, _ in runs[n]["floor"]),
                                       "/".join("%.2f" % c for c, _ in runs[n]["driver"])) for n in names)))


if __name__ == "__main__":
    main()
