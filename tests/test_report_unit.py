"""The fidelity report's output, without torch: the text table and JSON of a made-up report (the
text is pinned: it is what users and scripts read), and the chart (matplotlib, optional: without
it the chart is skipped with one line, and the rest of the report still works)."""
import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from onelib.pytorch_quant import report  # noqa: E402


def stats(mx, mean=None, ex=None, ma=None, rs=None, rt="onert", note=None, err=None):
    return {"max_lsb": mx, "mean_lsb": mean, "exact_share": ex, "max_abs": ma, "range_share": rs,
            "runtime": rt, "note": note, "error": err}
layers = [
    {"index": 0, "name": "x", "pytorch_op": "aten::quantize_per_tensor", "circle_ops": "QUANTIZE+TRANSPOSE",
     "shape": [1, 4, 4, 3], "dtype": "uint8", "scale": 0.0125, "zero_point": 3,
     "per_op": stats(0, 0.0, 1.0, 0.0, 0.0), "accumulated": stats(0, 0.0, 1.0, 0.0, 0.0, rt="tico")},
    {"index": 1, "name": "features.0.conv", "pytorch_op": "quantized::conv2d_relu", "circle_ops": "CONV_2D/RELU6",
     "shape": [1, 2, 2, 8], "dtype": "uint8", "scale": 0.031, "zero_point": 0,
     "per_op": stats(2, 0.125, 0.875, 0.062, 0.01), "accumulated": stats(3, 0.5, 0.5, 0.09, 0.02)},
    {"index": 2, "name": "fc", "pytorch_op": "aten::linear", "circle_ops": "FULLY_CONNECTED",
     "shape": [1, 10], "dtype": "float32", "scale": None, "zero_point": None,
     "per_op": stats(None, None, 0.3, 1.5e-6, 2.5e-7), "accumulated": stats(None, None, None, None, None, err="onert: boom ... end")},
]
final = {"name": "out", "shape": [1, 10], "scale": 0.05, "max_lsb": 1, "mean_lsb": 0.2, "exact_share": 0.8,
         "max_abs": 0.05, "range_share": 0.004, "top1": 1.0, "top5": 0.8, "runtime": "onert", "note": None, "error": None}
ffinal = dict(final, scale=None, max_lsb=None, mean_lsb=None)
efinal = dict(final, error="no output")


def make(final=final, layers=layers, model="m.pt"):
    return report.FidelityReport(model, "x86", "auto", "given (1x3x4x4)", {"profile": "luci"}, layers, final,
                                 ["ran on TICO, not onert: x"], {"convert": 0.5, "pytorch": 0.25})


TABLE = "fidelity of m.pt: circle vs PyTorch (engine x86), runtime auto\ninput: given (1x3x4x4)\nLSB = steps of each tensor's own scale; scale '-': a float tensor, compared in float (max = max |difference| in real units)\n\n                                                                           | per-op (PyTorch's inputs)       | accumulated (graph cut)\n#  layer            pytorch op                 circle op(s)         scale  |      max   mean   exact  on     |  max   mean   exact  on\n--------------------------------------------------------------------------------------------------------------------------------------\n0  x                aten::quantize_per_tensor  QUANTIZE+TRANSPOSE  0.0125  |        0  0.000  100.0%  onert  |    0  0.000  100.0%  tico\n1  features.0.conv  quantized::conv2d_relu     CONV_2D/RELU6        0.031  |        2  0.125   87.5%  onert  |    3  0.500   50.0%  onert\n2  fc               aten::linear               FULLY_CONNECTED          -  |  1.5e-06      -   30.0%  onert  |  err      -       -  onert\n\nfc accumulated: onert: boom ... end\nfloat layers: max |difference| and its share of the range (max - min) of PyTorch's tensor\n  fc: per-op 1.5e-06 (2.5e-05% of the range), accumulated -\nfirst layer over 1 LSB per op: features.0.conv\nfinal output out (1x10, scale 0.05): max 1 LSB, mean 0.200 LSB, exact 80.0%, top-1 100.0%, top-5 80.0% (onert)\nnote: ran on TICO, not onert: x\ntime: convert 0.50s, pytorch 0.25s"


def test_table_text_is_pinned():
    assert make().table() == TABLE


def test_table_final_line_float_and_error():
    assert make(ffinal).table().splitlines()[-3] == (
        "final output out (1x10, float): max |difference| 0.05 (0.4% of the range), exact 80.0%, "
        "top-1 100.0%, top-5 80.0% (onert)")
    assert make(efinal).table().splitlines()[-3] == "final output out: no output"


def test_json_keys_and_values():
    doc = make().to_dict()
    assert tuple(doc) == report.REPORT_KEYS
    assert all(tuple(r) == report.LAYER_KEYS for r in doc["layers"])
    assert tuple(doc["final"]) == report.FINAL_KEYS
    assert doc["first_over_1lsb"] == "features.0.conv"
    assert json.dumps(doc, default=str) == '{"model": "m.pt", "engine": "x86", "runtime": "auto", "input": "given (1x3x4x4)", "options": {"profile": "luci"}, "layers": [{"index": 0, "name": "x", "pytorch_op": "aten::quantize_per_tensor", "circle_ops": "QUANTIZE+TRANSPOSE", "shape": [1, 4, 4, 3], "dtype": "uint8", "scale": 0.0125, "zero_point": 3, "per_op": {"max_lsb": 0, "mean_lsb": 0.0, "exact_share": 1.0, "max_abs": 0.0, "range_share": 0.0, "runtime": "onert", "note": null, "error": null}, "accumulated": {"max_lsb": 0, "mean_lsb": 0.0, "exact_share": 1.0, "max_abs": 0.0, "range_share": 0.0, "runtime": "tico", "note": null, "error": null}}, {"index": 1, "name": "features.0.conv", "pytorch_op": "quantized::conv2d_relu", "circle_ops": "CONV_2D/RELU6", "shape": [1, 2, 2, 8], "dtype": "uint8", "scale": 0.031, "zero_point": 0, "per_op": {"max_lsb": 2, "mean_lsb": 0.125, "exact_share": 0.875, "max_abs": 0.062, "range_share": 0.01, "runtime": "onert", "note": null, "error": null}, "accumulated": {"max_lsb": 3, "mean_lsb": 0.5, "exact_share": 0.5, "max_abs": 0.09, "range_share": 0.02, "runtime": "onert", "note": null, "error": null}}, {"index": 2, "name": "fc", "pytorch_op": "aten::linear", "circle_ops": "FULLY_CONNECTED", "shape": [1, 10], "dtype": "float32", "scale": null, "zero_point": null, "per_op": {"max_lsb": null, "mean_lsb": null, "exact_share": 0.3, "max_abs": 1.5e-06, "range_share": 2.5e-07, "runtime": "onert", "note": null, "error": null}, "accumulated": {"max_lsb": null, "mean_lsb": null, "exact_share": null, "max_abs": null, "range_share": null, "runtime": "onert", "note": null, "error": "onert: boom ... end"}}], "first_over_1lsb": "features.0.conv", "final": {"name": "out", "shape": [1, 10], "scale": 0.05, "max_lsb": 1, "mean_lsb": 0.2, "exact_share": 0.8, "max_abs": 0.05, "range_share": 0.004, "top1": 1.0, "top5": 0.8, "runtime": "onert", "note": null, "error": null}, "notes": ["ran on TICO, not onert: x"], "timings": {"convert": 0.5, "pytorch": 0.25}}'


def test_json_file(tmp_path):
    path = str(tmp_path / "r.json")
    make().to_json(path)
    with open(path) as f:
        assert json.load(f) == json.loads(json.dumps(make().to_dict(), default=str))


def _have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _have_matplotlib(), reason="matplotlib is not installed (optional: the chart is "
                                                   "skipped without it, tested below)")
def test_chart_is_a_png(tmp_path):
    import zlib
    import struct
    path = str(tmp_path / "r.png")
    assert make().plot(path) is True
    with open(path, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", png[8:16])
    w, h = struct.unpack(">II", png[16:24])
    assert kind == b"IHDR" and w >= 200 and h >= 200
    idat, pos = b"", 8
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    assert kind == b"IEND" and len(set(zlib.decompress(idat))) > 5   # not a blank image
    # many layers, long names: still one chart
    many = [dict(layers[1], index=i, name="features.%d.conv.with.a.long.name" % i) for i in range(60)]
    assert make(layers=many).plot(path) is True


@pytest.fixture
def no_matplotlib(monkeypatch):
    """As if matplotlib were not installed (import matplotlib -> ImportError)."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_without_matplotlib_the_chart_is_skipped(tmp_path, no_matplotlib):
    path = tmp_path / "r.png"
    assert make().plot(str(path)) is False
    assert not path.exists()
    assert "matplotlib" in report.CHART_SKIPPED and "pip install matplotlib" in report.CHART_SKIPPED
    assert make().table() == TABLE


def test_cli_without_matplotlib_says_so_in_one_line(tmp_path, monkeypatch, no_matplotlib, capsys):
    from onelib.pytorch_quant.report import cli
    monkeypatch.setattr(cli, "fidelity", lambda *a, **k: make())
    pp, jp = str(tmp_path / "r.png"), str(tmp_path / "r.json")
    assert cli.main(["m.pt", "--json", jp, "--plot", pp]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == TABLE
    assert captured.err == "one-import-pytorch-quant: note: %s\n" % report.CHART_SKIPPED
    assert os.path.exists(jp) and not os.path.exists(pp)


def test_cli_option_error_is_one_line(capsys):
    from onelib.pytorch_quant.report import cli
    assert cli.main(["m.pt", "--fc_as_conv", "--profile", "luci"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fc_as_conv is an alias of profile=onert" in err
