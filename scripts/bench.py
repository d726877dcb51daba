#!/usr/bin/env python3
"""Conversion speed and memory, measured and printed (the README's table comes from this).

    venv/bin/python scripts/bench.py [--repeat 3]

For each model: quantize in code (eager PTQ, x86), trace, save; then convert the saved file in a
fresh process (the way the driver runs) several times and print the median wall time of the
conversion alone (load, freeze, lower, write), ``import torch`` (which a TorchScript file needs),
the whole process, and the peak resident memory of that process.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
warnings.filterwarnings("ignore")


def mobilenet_v2(width=1.0, num_classes=1000):
    """MobileNetV2 built in code (random weights; the architecture is what costs time)."""
    import torch.nn as nn
    import qmodels

    def cbr(cin, cout, k=3, s=1, g=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    class IR(nn.Module):
        def __init__(self, cin, cout, s, t):
            super().__init__()
            import torch.ao.nn.quantized as nnq
            hid = cin * t
            layers = ([cbr(cin, hid, 1)] if t != 1 else []) + [cbr(hid, hid, 3, s, hid), cbr(hid, cout, 1, act=False)]
            self.conv = nn.Sequential(*layers)
            self.use_res = s == 1 and cin == cout
            self.skip_add = nnq.FloatFunctional()

        def forward(self, x):
            return self.skip_add.add(x, self.conv(x)) if self.use_res else self.conv(x)

    class Net(qmodels.QModel):
        input_shape = (1, 3, 224, 224)

        def __init__(self):
            super().__init__()
            cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            c = int(32 * width)
            feats = [cbr(3, c, 3, 2)]
            for t, ch, n, s in cfg:
                for i in range(n):
                    feats.append(IR(c, int(ch * width), s if i == 0 else 1, t))
                    c = int(ch * width)
            feats.append(cbr(c, 1280, 1))
            self.features = nn.Sequential(*feats)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(1280, num_classes)

        def fuse_list(self):
            out = []
            for name, m in self.named_modules():
                if isinstance(m, nn.Sequential) and len(m) in (2, 3) and isinstance(m[0], nn.Conv2d):
                    out.append([name + ".%d" % i for i in range(len(m))])
            return out

        def body(self, x):
            import torch
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    return Net()


def build(name, tmp):
    import qmodels
    if name == "mobilenet_v2":
        model, shape = mobilenet_v2(), (1, 3, 224, 224)
    else:
        factory, shape = qmodels.all_models()[name]
        model = factory()
    q = qmodels.quantize_eager(model, "x86", shape)
    path = os.path.join(tmp, name + ".pt")
    qmodels.trace_and_save(q, shape, path, engine="x86")
    return path, shape


CHILD = r"""
import sys, time, resource, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
import torch  # a TorchScript file needs torch to unpack its weights; timed apart from the conversion
tt = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from onelib.pytorch_quant import api
t1 = time.perf_counter()
conv = api.convert(sys.argv[2], api.ConvertOptions(input_shapes=[[int(v) for v in sys.argv[3].split(",")]]))
conv.save(sys.argv[4])
t2 = time.perf_counter()
print("%f %f %f %d %d" % (t2 - t1, t2 - t0, tt - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(conv.graph.ops)))
"""


def measure(path, shape, repeat):
    out = path + ".circle"
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", CHILD, ROOT, path, ",".join(map(str, shape)), out],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit("conversion of %s failed:\n%s" % (path, res.stderr[-2000:]))
        wall = time.perf_counter() - t0
        conv_s, in_proc_s, torch_s, rss_kb, n_ops = res.stdout.split()
        runs.append((float(conv_s), wall, int(rss_kb), int(n_ops), float(torch_s)))
    runs.sort()
    mid = runs[len(runs) // 2]
    return {"convert_s": mid[0], "process_s": sorted(r[1] for r in runs)[len(runs) // 2],
            "peak_rss_mb": max(r[2] for r in runs) / 1024.0, "circle_kb": os.path.getsize(out) / 1024.0,
            "ops": mid[3], "pt_kb": os.path.getsize(path) / 1024.0,
            "torch_s": sorted(r[4] for r in runs)[len(runs) // 2]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--models", default="classifier,inverted_residual,basic_block,mobilenet_v2")
    args = ap.parse_args()
    print("%-20s %9s %9s %6s %14s %11s %12s %12s" % ("model", "pt kB", "circle kB", "ops", "import torch s",
                                                       "convert s", "process s", "peak RSS MB"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path, shape = build(name, tmp)
            r = measure(path, shape, args.repeat)
            print("%-20s %9.1f %9.1f %6d %14.3f %11.3f %12.3f %12.1f" % (
                name, r["pt_kb"], r["circle_kb"], r["ops"], r["torch_s"], r["convert_s"], r["process_s"],
                r["peak_rss_mb"]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
