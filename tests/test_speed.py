"""What makes a conversion cost little more than loading the model (issue 12), pinned so it stays:

- traced TorchScript is walked without ``torch.jit.freeze`` and gives the same bytes as the frozen
  walk; scripted models still freeze;
- the writer's hole-leaving builder writes the same bytes as flatbuffers' own builder;
- the driver's lean conversion (``options.keep_graphs = False``) gives the same bytes, and garbage
  collection is back on afterwards;
- ``--help``, ``--version`` and a ``.pt2`` conversion import neither torch nor the fidelity
  report's modules.

The timings themselves are measured by scripts/bench.py; byte identity over every test and sweep
model by scripts/circle_hashes.py.
"""
import gc
import json
import os
import subprocess
import sys

import pytest

import qmodels
from onelib.pytorch_quant import api
from onelib.pytorch_quant.circle import writer
from onelib.pytorch_quant.frontend import torchscript

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "one-import-pytorch-quant")

CASES = [("classifier", "ptq", "x86"), ("inverted_residual", "fx", "qnnpack"), ("basic_block", "qat", "fbgemm")]


def _saved(name, recipe, engine, folder):
    factory, shape = qmodels.all_models()[name]
    if recipe == "fx":
        q = qmodels.quantize_fx(factory(), engine, shape)
    else:
        q = qmodels.quantize_eager(factory(), engine, shape, qat=recipe == "qat")
    path = os.path.join(str(folder), "%s_%s_%s.pt" % (name, recipe, engine))
    qmodels.trace_and_save(q, shape, path, engine=engine)
    return path, shape, q


def _frozen_bytes(monkeypatch, path, options):
    with monkeypatch.context() as m:
        m.setattr(torchscript, "_walk_unfrozen", lambda *a: None)
        conv = api.convert(path, options)
    assert type(conv.source_record.module).__name__ != "_InlinedModule"
    return conv.circle


@pytest.mark.parametrize("name, recipe, engine", CASES)
def test_traced_model_is_walked_without_freeze_and_gives_the_same_bytes(name, recipe, engine, tmp_path,
                                                                        monkeypatch):
    import torch
    path, shape, q = _saved(name, recipe, engine, tmp_path)
    options = api.ConvertOptions(input_shapes=[list(shape)])
    with qmodels.engine_ctx(engine), monkeypatch.context() as m:
        def no_freeze(*a, **k):
            raise AssertionError("torch.jit.freeze called for a traced model")
        m.setattr(torch.jit, "freeze", no_freeze)
        fast = api.convert(path, options)
    assert type(fast.source_record.module).__name__ == "_InlinedModule"
    with qmodels.engine_ctx(engine):
        assert fast.circle == _frozen_bytes(monkeypatch, path, options)
        # the fidelity report runs the walked graph on the module: it must compute PyTorch's output
        x = qmodels.grid_input(q, shape, qmax=127 if engine in ("x86", "fbgemm") else 255)
        with torch.no_grad():
            want = torch.jit.load(path)(torch.from_numpy(x)).numpy()
            got = fast.source_record.module(torch.from_numpy(x)).numpy()
    assert (want == got).all()


def test_scripted_model_still_freezes(tmp_path):
    import torch
    factory, shape = qmodels.MODELS["conv_relu_conv_conv"]
    q = qmodels.quantize_eager(factory(), "x86", shape)
    path = str(tmp_path / "scripted.pt")
    with qmodels.engine_ctx("x86"):
        torch.jit.save(torch.jit.script(q), path)
        conv = api.convert(path, api.ConvertOptions(input_shapes=[list(shape)]))
    assert type(conv.source_record.module).__name__ != "_InlinedModule"


def test_lean_conversion_gives_the_same_bytes_and_turns_gc_back_on(tmp_path):
    path, shape, _ = _saved("classifier", "ptq", "x86", tmp_path)
    options = api.ConvertOptions(input_shapes=[list(shape)])
    assert gc.isenabled()
    with qmodels.engine_ctx("x86"):
        full = api.convert(path, options)
        lean_options = api.ConvertOptions(input_shapes=[list(shape)])
        lean_options.keep_graphs = False
        lean = api.convert(path, lean_options)
    assert lean.circle == full.circle and lean.notes == full.notes
    assert lean.graph is None and lean.source_graph is None
    assert gc.isenabled()
    with pytest.raises(api.ConversionError):
        api.convert(str(tmp_path / "missing.pt"), options)
    assert gc.isenabled()


def test_hole_builder_writes_what_flatbuffers_writes(tmp_path, monkeypatch):
    """Large vectors go in as holes filled at the end: the bytes must be flatbuffers' own."""
    path, shape, _ = _saved("basic_block", "ptq", "x86", tmp_path)
    options = api.ConvertOptions(input_shapes=[list(shape)])
    with qmodels.engine_ctx("x86"):
        conv = api.convert(path, options)
        monkeypatch.setattr(writer, "_HOLE_BYTES", 16)          # nearly every vector is a hole
        holes = writer.write_circle(conv.graph)
        import flatbuffers

        class Plain(flatbuffers.Builder):
            def output_bytes(self):
                return bytes(self.Output())
        monkeypatch.setattr(writer, "_builder_class", lambda fb: Plain)
        plain = writer.write_circle(conv.graph)
    assert holes == plain == conv.circle
    assert isinstance(conv.circle, bytes)


_MODULES = r"""
import runpy, sys, json
sys.argv = [sys.argv[1]] + sys.argv[2:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
heavy = ("torch", "matplotlib", "PIL", "onert", "tico", "onelib.pytorch_quant.report",
         "onelib.pytorch_quant.runtimes")
sys.stderr.write("\nMODULES " + json.dumps(sorted(m for m in heavy if m in sys.modules)) + "\n")
"""


def _imported(args, env=None):
    proc = subprocess.run([sys.executable, "-c", _MODULES, DRIVER] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env)
    err = proc.stderr.decode(errors="replace")
    line = [ln for ln in err.splitlines() if ln.startswith("MODULES ")]
    assert line, err[-2000:]
    return json.loads(line[-1][len("MODULES "):]), err


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_nothing_heavy(args):
    assert _imported(args)[0] == []


def test_pt2_conversion_imports_neither_torch_nor_the_report(tmp_path):
    import pt2models
    q = pt2models.quantize("conv", "xnnpack")
    src = q.save(str(tmp_path / "conv.pt2"))
    out = str(tmp_path / "conv.circle")
    block = tmp_path / "block" / "torch"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=str(block.parent))
    mods, err = _imported(["-i", src, "-o", out], env=env)
    assert mods == [], err
    with open(out, "rb") as f:
        assert f.read() == api.convert(src).circle


def test_driver_restores_gc_and_threads_setting(tmp_path, monkeypatch):
    """The driver turns the cyclic GC off and asks for one torch thread only while it converts;
    main() also runs in-process, so both come back."""
    import importlib.machinery
    import importlib.util
    path, shape, _ = _saved("classifier", "ptq", "x86", tmp_path)
    loader = importlib.machinery.SourceFileLoader("driver_for_speed_test", DRIVER)
    drv = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(drv)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = {}
    real = api.convert

    def spy(*a, **k):
        seen["gc"] = gc.isenabled()
        seen["keep_graphs"] = a[1].keep_graphs
        return real(*a, **k)
    monkeypatch.setattr(api, "convert", spy)
    with qmodels.engine_ctx("x86"):
        rc = drv.main(["-i", path, "-o", str(tmp_path / "m.circle"), "--input_shapes",
                       ",".join(map(str, shape))])
    assert rc == 0
    assert seen == {"gc": False, "keep_graphs": False}
    assert gc.isenabled() and "OMP_NUM_THREADS" not in os.environ
    with drv._one_torch_thread():   # torch is loaded in this process: nothing to set
        assert "OMP_NUM_THREADS" not in os.environ
