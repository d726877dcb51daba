#!/usr/bin/env python3
"""Fidelity of real architectures, as the Markdown table in the README.

    venv/bin/python scripts/fidelity_table.py [--arch NAME ...] [--tables]

For every case of tests/archmodels.py (MobileNetV2/V3, ResNet bottleneck, ShuffleNetV2, Inception,
U-Net; eager PTQ on x86 and qnnpack, FX for three of them): quantize in code, trace, save,
convert, and compare with PyTorch by ``report.fidelity`` on the same input the tests use. The
numbers are exactly those tests/test_architectures.py asserts on. Columns:

* e2e max LSB onert / TICO: the largest difference at the model output, in steps of its scale:
  the onert conversion (``fc_as_conv``) on onert, luci's form on TICO's reference runtime;
* exact outputs: share of output elements equal to PyTorch's;
* PyTorch spread: the same saved file and input run on PyTorch's other quantized engine;
* worst per-op LSB: the largest single-op difference, each op fed PyTorch's own inputs;
* top-1 agreement: the class PyTorch picks (per image; per pixel for the U-Net).

``--tables`` also prints each case's layer-by-layer report.
"""
import argparse
import os
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
warnings.filterwarnings("ignore")


def main(argv=None):
    import archmodels as A

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", action="append", choices=sorted(A.ARCHS), help="only these architectures")
    p.add_argument("--tables", action="store_true", help="print every case's layer-by-layer report too")
    args = p.parse_args(argv)
    cases = [c for c in A.CASES if not args.arch or c[0] in args.arch]
    results = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fidelity_table_") as folder:
        for case in cases:
            m = A.measure(*case, folder=folder)
            results.append(m)
            if args.tables:
                for label in A.RUNTIME_LABELS:
                    print(m.table[label].replace(folder + os.sep, ""))
                    print()
    print(A.markdown_table(results))
    sys.stdout.flush()
    sys.stderr.write("%d cases in %.1f s\n" % (len(results), time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
