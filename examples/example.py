#!/usr/bin/env python3
"""The main job on a bundled example, end to end:

1. build a small CNN in code, quantize it with PyTorch (eager PTQ, x86 qconfig), trace and save it;
2. convert it with the driver through the example cfg (cfg/example.cfg), the way onecc runs it;
3. run the circle on onert and compare with PyTorch's own quantized output, in LSB.

    venv/bin/python examples/example.py [WORK_DIR]     (default: build/example)
"""
import os
import subprocess
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
warnings.filterwarnings("ignore")


def build_model():
    import torch
    import torch.nn as nn
    import torch.ao.quantization as tq

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()
            self.dw, self.dw_bn, self.dw_relu = nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16), \
                nn.BatchNorm2d(16), nn.ReLU()
            self.pw, self.pw_bn = nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16)
            self.skip = nn.Conv2d(16, 16, 1, stride=2)
            self.add = torch.ao.nn.quantized.FloatFunctional()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.relu1(self.bn1(self.conv1(self.quant(x))))
            y = self.pw_bn(self.pw(self.dw_relu(self.dw_bn(self.dw(x)))))
            y = self.add.add_relu(y, self.skip(x))
            return self.dequant(self.fc(torch.flatten(self.pool(y), 1)))

    torch.manual_seed(0)
    m = Net().eval()
    torch.backends.quantized.engine = "x86"
    m.qconfig = tq.get_default_qconfig("x86")
    tq.fuse_modules(m, [["conv1", "bn1", "relu1"], ["dw", "dw_bn", "dw_relu"], ["pw", "pw_bn"]], inplace=True)
    tq.prepare(m, inplace=True)
    with torch.no_grad():
        for _ in range(16):
            m(torch.randn(1, 3, 16, 16))
    tq.convert(m, inplace=True)
    return m


def main(argv):
    import torch
    work = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(ROOT, "build", "example"))
    os.makedirs(work, exist_ok=True)
    model = build_model()
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, 3, 16, 16), check_trace=False)
    torch.jit.save(traced, os.path.join(work, "example_q.pt"))
    print("1. quantized in PyTorch (eager PTQ, x86) and saved: %s" % os.path.join(work, "example_q.pt"))

    driver = os.path.join(ROOT, "one-import-pytorch-quant")
    cfg = os.path.join(ROOT, "cfg", "example.cfg")
    cmd = [sys.executable, driver, "-C", cfg]
    print("2. converting: %s   (in %s)" % (" ".join(["one-import-pytorch-quant", "-C", "cfg/example.cfg"]), work))
    rc = subprocess.call(cmd, cwd=work)
    if rc != 0:
        print("conversion failed (exit %d); see %s" % (rc, os.path.join(work, "example_q.circle.log")))
        return rc
    circle = os.path.join(work, "example_q.circle")
    print("   wrote %s (%d bytes)" % (circle, os.path.getsize(circle)))

    # inputs on the input quantizer's grid, so QUANTIZE rounds the same way in both
    s, zp = float(model.quant.scale), int(model.quant.zero_point)
    rng = np.random.RandomState(1)
    from onelib.pytorch_quant.runtimes import run_onert
    worst, agree = 0, 0
    n = 8
    for i in range(n):
        x = ((rng.randint(0, 128, size=(1, 3, 16, 16)) - zp) * np.float32(s)).astype(np.float32)
        with torch.no_grad():
            y_ref = model(torch.from_numpy(x)).numpy()
        y = run_onert(circle, [x])[0]
        # the output is dequantized on the fc's output grid: count the difference in its steps
        worst = max(worst, int(np.rint(np.abs(y - y_ref).max() / float(model.fc.scale))))
        agree += int(np.argmax(y) == np.argmax(y_ref))
    print("3. onert vs PyTorch on %d inputs: max %d LSB of the output scale, top-1 agrees on %d/%d"
          % (n, worst, agree, n))
    return 0 if worst <= 3 and agree == n else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
