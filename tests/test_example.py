"""The README's first command runs examples/example.py: it must keep working end to end."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_example_converts_through_the_cfg_and_matches_pytorch_on_onert(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "example.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "top-1 agrees on 8/8" in proc.stdout
    assert (tmp_path / "example_q.circle").stat().st_size > 1000
    assert (tmp_path / "example_q.circle.log").exists()
