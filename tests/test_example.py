"""The README's first command runs examples/example.py: it must keep working end to end."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_example_converts_through_the_cfgs_and_classifies_as_pytorch_on_onert(tmp_path):
    # fewer epochs than the README's run: the checks compare the circle with PyTorch's quantized
    # model, whatever its accuracy
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "example.py"), str(tmp_path),
                           "--epochs", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("eager x86 ") for line in lines), proc.stdout
    assert any(line.startswith("PT2E XNNPACK ") for line in lines), proc.stdout
    assert "all circles match PyTorch" in proc.stdout
    for name in ("digits_x86", "digits_xnnpack"):
        assert (tmp_path / (name + ".circle")).stat().st_size > 10000
        assert (tmp_path / (name + ".circle.log")).exists()
