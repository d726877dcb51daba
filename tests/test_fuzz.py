"""Short seeded runs of the fuzzers (issue 13): every mutated .pt2 ends in a converted model or
one ConversionError, every mutated cfg in exit 0 or one driver error line; nothing hangs.
The long runs are by hand: ``scripts/fuzz_pt2.py --iterations 10000 --seed 1`` (README)."""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", script)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=1200)
    m = re.search(r"(\d+) uncaught, (\d+) hangs", proc.stdout)
    assert m, (proc.stdout, proc.stderr[-3000:])
    return proc, int(m.group(1)), int(m.group(2))


def test_fuzz_pt2_short_run_has_no_uncaught_errors_or_hangs():
    proc, uncaught, hangs = _run("fuzz_pt2.py", "--iterations", "200", "--seed", "0", "--timeout", "20")
    assert (uncaught, hangs) == (0, 0), proc.stdout
    assert proc.returncode == 0


def test_fuzz_cfg_short_run_has_no_uncaught_errors_or_hangs():
    proc, uncaught, hangs = _run("fuzz_cfg.py", "--iterations", "300", "--seed", "0", "--timeout", "20")
    assert (uncaught, hangs) == (0, 0), proc.stdout
    assert proc.returncode == 0
