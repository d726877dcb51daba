"""Reliability and security (issue 13): no code runs from a model, no hang, no lost file, every
bad input one clear line. The bad inputs are built here in code from two small valid models.

Each test names the numbered item of the issue it covers.
"""
import json
import os
import signal
import stat
import subprocess
import sys
import time
import types
import zipfile

import pytest

import badinputs as B

REPO = B.REPO
NAME = B.NAME
DRIVER = B.DRIVER

if REPO not in sys.path:
    sys.path.insert(0, REPO)

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]


def run_driver(args, cwd=None, timeout=120, **kw):
    return subprocess.run([sys.executable, DRIVER] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, **kw)


def assert_one_line(proc, *needles, code=255):
    err = proc.stderr.decode("utf-8", "replace") if isinstance(proc.stderr, bytes) else proc.stderr
    assert proc.returncode == code, (proc.returncode, err)
    why = B.one_line_error(err, code, needles)
    assert why is None, why
    return err.strip()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secmodels")
    return {"pt": B.tiny_torchscript(str(folder / "conv.pt")),
            "pt2": B.tiny_pt2(str(folder / "conv.pt2"))}


# ------------------------------------------------------------- 1. no code runs from a model

def test_item1_setstate_cannot_write_files(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"hello world")
    evil = B.save_file_writing_module(str(tmp_path / "evil.pt"), str(victim))
    victim.write_bytes(b"hello world")   # saving ran __getstate__ only; make sure of the start
    out = tmp_path / "evil.circle"
    proc = run_driver(["-i", evil, "-o", str(out), "--input_shapes", "1,3"])
    assert victim.read_bytes() == b"hello world"
    assert_one_line(proc, "evil.pt", "__setstate__")
    assert not out.exists()


def _code_zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/data.pkl", b"")
        z.writestr("m/constants.pkl", b"")
        for rel, text in files.items():
            z.writestr("m/code/" + rel, text)
    return path


_DISGUISED = '''class Conv2d(Module):
  __parameters__ = []
  training : bool
  def forward(self: __torch__.torch.ao.nn.quantized.modules.conv.Conv2d, input: Tensor) -> Tensor:
    return input
  def __setstate__(self: __torch__.torch.ao.nn.quantized.modules.conv.Conv2d, state: Tuple[str, bool]) -> NoneType:
    self.training = (state)[1]
    _0 = torch.fill_(torch.from_file((state)[0], True, 4), 65)
    return None
'''


@pytest.mark.parametrize("rel,text,needle", [
    # a class named like PyTorch's quantized conv may still not call anything while loading
    ("__torch__/torch/ao/nn/quantized/modules/conv.py", _DISGUISED, "while loading"),
    # a class of the user's own with a __setstate__
    ("__torch__/mymodel.py", "class M(Module):\n  def __setstate__(self, s: int) -> NoneType:\n    return None\n",
     "__setstate__"),
    # forward may not name file ops either (freeze folds constant expressions)
    ("__torch__/mymodel.py", "class M(Module):\n  def forward(self, x: Tensor) -> Tensor:\n"
                             "    return torch.from_file(\"/etc/passwd\", False, 4)\n", "from_file"),
    ("__torch__/mymodel.py", "class M(Module):\n  def forward(self, x: Tensor) -> Tensor:\n"
                             "    return ops.torchaudio.load(x)\n", "torchaudio"),
    ("__torch__/mymodel.py", "class M(Module):\n  def forward(self, x: Tensor) -> Tensor:\n"
                             "    return x.(\n", "not TorchScript source"),
])
def test_item1_archive_code_is_inspected_before_loading(tmp_path, rel, text, needle):
    from onelib.pytorch_quant.errors import ConversionError
    from onelib.pytorch_quant.frontend import ts_archive
    path = _code_zip(str(tmp_path / "m.pt"), {rel: text})
    with pytest.raises(ConversionError) as e:
        ts_archive.inspect_archive(path)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_item1_user_attribute_names_are_not_judged_as_ops(tmp_path):
    from onelib.pytorch_quant.frontend import ts_archive
    code = ("class M(Module):\n  file_conv : __torch__.torch.nn.modules.linear.Identity\n"
            "  def forward(self, x: Tensor) -> Tensor:\n    load = self.file_conv\n"
            "    return (load).forward(torch.add(x, self.seed), )\n")
    ts_archive.inspect_archive(_code_zip(str(tmp_path / "m.pt"), {"__torch__/mymodel.py": code}))


def test_item1_quantized_archives_pass_inspection(tmp_path, models):
    """Eager traced, scripted (PyTorch's quantized classes with __setstate__) and FX archives."""
    import torch

    import qmodels
    from onelib.pytorch_quant.frontend import ts_archive
    ts_archive.inspect_archive(models["pt"])
    factory, shape = qmodels.all_models()["classifier"]
    q = qmodels.quantize_eager(factory(), "x86", shape)
    with qmodels.engine_ctx("x86"):
        path = str(tmp_path / "scripted.pt")
        torch.jit.save(torch.jit.script(q), path)
    with zipfile.ZipFile(path) as z:   # the scripted archive does hold torch's __setstate__s
        assert any(b"def __setstate__" in z.read(n) for n in z.namelist() if n.endswith(".py"))
    ts_archive.inspect_archive(path)
    fx = qmodels.quantize_fx(qmodels.all_models()["basic_block"][0](), "x86", qmodels.all_models()["basic_block"][1])
    path = str(tmp_path / "fx.pt")
    qmodels.trace_and_save(fx, qmodels.all_models()["basic_block"][1], path)
    ts_archive.inspect_archive(path)


# --------------------------------------------------------------------------------- 2. hangs

@pytest.mark.parametrize("target", ["aten.clone.default", "aten.alias.default", "aten.detach.default",
                                    "aten.dropout.default", "aten.contiguous.default",
                                    "aten.hardtanh.default"])
def test_item2_op_renamed_onto_its_own_input_is_an_error(tmp_path, models, target):
    p = B.Pt2(models["pt2"])
    doc = p.model()
    conv = B.first_node(doc, "conv2d")
    name = conv["outputs"][0]["as_tensor"]["name"]
    node = {"target": "torch.ops." + target, "inputs": [{"name": "self", "arg": B.tensor_ref(name), "kind": 1}],
            "outputs": [B.tensor_ref(name)], "metadata": {}}
    B.nodes(doc).insert(B.nodes(doc).index(conv) + 1, node)
    p.set_model(doc)
    path = p.save(str(tmp_path / "loop.pt2"))
    proc = run_driver(["-i", path, "-o", str(tmp_path / "o.circle")], timeout=60)
    assert_one_line(proc, "models/model.json", "'%s'" % name, "defined twice")
    assert not (tmp_path / "o.circle").exists()


# ------------------------------------------------------------------- 3. the user's model kept

def test_item3_log_never_overwrites_the_input(tmp_path, models):
    with open(models["pt2"], "rb") as f:
        original = f.read()
    inp = tmp_path / "m.circle.log"
    inp.write_bytes(original)
    proc = run_driver(["-i", str(inp), "-o", str(tmp_path / "m.circle")])
    assert inp.read_bytes() == original
    assert_one_line(proc, "log", "overwrite the input")
    assert sorted(os.listdir(str(tmp_path))) == ["m.circle.log"]


# ------------------------------------------------ 4. luci-rule findings reach the user intact

def test_item4_real_findings_are_reported(tmp_path):
    from onelib.pytorch_quant import verify
    drv = _driver_module()
    finding = verify.Finding("bias_scale", "error", "#0 CONV_2D", "conv.bias", "scale is wrong")
    log = drv._Log(str(tmp_path / "m.circle.log"), False)
    orig = drv._findings
    drv._findings = lambda data, args: ([finding], [])
    try:
        with pytest.raises(drv.VerificationError) as e:
            drv._builtin_check(b"", types.SimpleNamespace(softmax_scale="1/256"), log, "m.circle")
    finally:
        drv._findings = orig
        log.close()
    assert "[bias_scale]" in str(e.value) and "conv.bias" in str(e.value)
    assert "[bias_scale]" in (tmp_path / "m.circle.log").read_text()


_DRV = []


def _driver_module():
    if not _DRV:
        import importlib.machinery
        import importlib.util
        loader = importlib.machinery.SourceFileLoader("one_import_pytorch_quant_sec", DRIVER)
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        loader.exec_module(module)
        _DRV.append(module)
    return _DRV[0]


# ----------------------------------------------------------------------- 5. shape checks

@pytest.mark.parametrize("shapes,needles", [
    ("1,5,8,8", ["conv", "3 channels", "5 channels"]),
    ("1,3,8,8:1,3,8,8", ["2 input shapes", "1 input"]),
    ("3,8,8", ["conv"]),
    ("1,3,2,2", ["too small"]),
])
def test_item5_torchscript_input_shapes_must_fit(tmp_path, models, shapes, needles):
    out = tmp_path / "o.circle"
    proc = run_driver(["-i", models["pt"], "-o", str(out), "--input_shapes", shapes, "--no_verify"])
    assert_one_line(proc, *needles)
    assert not out.exists()


@pytest.mark.parametrize("dim", [0, -8])
def test_item5_pt2_input_dimension_must_be_positive(tmp_path, models, dim):
    p = B.Pt2(models["pt2"])
    doc = p.model()
    x = B.user_input_name(doc)
    doc["graph_module"]["graph"]["tensor_values"][x]["sizes"][1] = {"as_int": dim}
    p.set_model(doc)
    out = tmp_path / "o.circle"
    proc = run_driver(["-i", p.save(str(tmp_path / "m.pt2")), "-o", str(out)])
    assert_one_line(proc, "tensor_values['%s'].sizes[1]" % x, str(dim))
    assert not out.exists()


def test_item5_pt2_extra_or_wrong_input_shape(tmp_path, models):
    out = tmp_path / "o.circle"
    proc = run_driver(["-i", models["pt2"], "-o", str(out), "--input_shapes", "1,3,8,8:1,4"])
    assert_one_line(proc, "2 input shapes")
    proc = run_driver(["-i", models["pt2"], "-o", str(out), "--input_shapes", "1,5,8,8"])
    assert_one_line(proc, "1,5,8,8", "1,3,8,8")
    assert not out.exists()


# ------------------------------------------------------------------------------ 6. memory

def _limited(mb):
    """preexec_fn: an address-space limit, so that materialising gigabytes fails at once."""
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
    return limit


def test_item6_stride0_weight_is_refused_before_it_is_made(tmp_path, models):
    p = B.Pt2(models["pt2"])
    cfg = json.loads(p.get("data/weights/model_weights_config.json"))
    entry = sorted(cfg["config"].values(), key=lambda m: len(m["tensor_meta"]["sizes"]))[-1]
    entry["tensor_meta"]["sizes"] = [{"as_int": 3}, {"as_int": 1000}, {"as_int": 1000}, {"as_int": 1000}]
    entry["tensor_meta"]["strides"] = [{"as_int": 0}] * 4
    p.set("data/weights/model_weights_config.json", json.dumps(cfg).encode())
    path = p.save(str(tmp_path / "m.pt2"))
    proc = run_driver(["-i", path, "-o", str(tmp_path / "o.circle")], preexec_fn=_limited(1500))
    assert_one_line(proc, "model_weights_config.json", "3000000000")


def test_item6_member_that_inflates_is_refused(tmp_path, models):
    p = B.Pt2(models["pt2"])
    p.set_model(p.model_member() + b" " * (64 << 20))   # valid JSON, 64 MB, deflates to ~64 kB
    path = p.save(str(tmp_path / "bomb.pt2"), compressed=(p.model_name,))
    assert os.path.getsize(path) < 1 << 20
    proc = run_driver(["-i", path, "-o", str(tmp_path / "o.circle")], preexec_fn=_limited(1500))
    assert_one_line(proc, "models/model.json", "zip bomb")


def test_item6_huge_declared_tensor_is_an_error(tmp_path, models):
    p = B.Pt2(models["pt2"])
    doc = p.model()
    x = B.user_input_name(doc)
    doc["graph_module"]["graph"]["tensor_values"][x]["sizes"] = [{"as_int": 10 ** 6}] * 2
    doc["graph_module"]["graph"]["tensor_values"][x]["strides"] = [{"as_int": 10 ** 6}, {"as_int": 1}]
    p.set_model(doc)
    proc = run_driver(["-i", p.save(str(tmp_path / "m.pt2")), "-o", str(tmp_path / "o.circle")])
    assert_one_line(proc, "tensor_values['%s']" % x, "elements")


# -------------------------------------------------------------------------------- 7. signals

def _slow_tools(folder):
    os.makedirs(folder)
    tool = os.path.join(folder, "circle-verify")
    with open(tool, "w") as f:
        f.write("#!/bin/sh\nsleep 30\n")
    os.chmod(tool, 0o755)
    return folder


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_item7_signal_in_the_check_window_removes_the_temp_file(tmp_path, models, sig):
    bin_dir = _slow_tools(str(tmp_path / "bin"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # a shell's background job starts with SIGINT ignored, and Python then keeps it ignored: give
    # the driver the default disposition a user's terminal gives it
    proc = subprocess.Popen([sys.executable, DRIVER, "-i", models["pt2"], "-o", str(out_dir / "m.circle"),
                             "--one_bin_dir", bin_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and not [n for n in os.listdir(str(out_dir)) if n.endswith(".tmp.circle")]:
        time.sleep(0.05)
    assert [n for n in os.listdir(str(out_dir)) if n.endswith(".tmp.circle")], "no check window seen"
    time.sleep(0.3)   # inside the slow tool now
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert sorted(os.listdir(str(out_dir))) == ["m.circle.log"]
    lines = [l for l in err.decode().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(NAME + ": "), err
    assert proc.returncode == (130 if sig == signal.SIGINT else 128 + sig)


def test_item7_interrupt_after_the_work_is_one_line(capsys):
    drv = _driver_module()

    def late():
        raise KeyboardInterrupt()
    orig = drv.main
    drv.main = late
    try:
        with pytest.raises(SystemExit) as e:
            drv._run_as_script()
    finally:
        drv.main = orig
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert err.strip() == NAME + ": interrupted"


# --------------------------------------------------------- 8. every bad .pt2 names its place

def _mutate_model(fn):
    def make(p):
        doc = p.model()
        fn(doc)
        p.set_model(doc)
        return p.to_bytes()
    return make


def _set(path_keys, value):
    def fn(doc):
        d = doc
        for k in path_keys[:-1]:
            d = d[k]
        d[path_keys[-1]] = value
    return fn


def _deep(p):
    p.set_model(b"[" * 200000 + b"]" * 200000)
    return p.to_bytes()


def _corrupt_deflate(p):
    data = p.to_bytes(compressed=(p.model_name,))
    i = data.index(b"model.json") + len("model.json")
    return data[:i + 100] + bytes(b ^ 0x5A for b in data[i + 100:i + 400]) + data[i + 400:]


def _encrypted(p):
    data = bytearray(p.to_bytes())
    # set the "encrypted" flag bit of model.json in the central directory
    name = p.model_name.encode()
    i = bytes(data).rindex(b"PK\x01\x02", 0, bytes(data).rindex(name))
    data[i + 8] |= 1
    return bytes(data)


def _bad_zip(p):
    data = p.to_bytes()
    i = data.rindex(b"PK\x01\x02")
    return data[:i] + b"\x00" * 46 + data[i + 46:]


def _w(fn):
    """A mutation of the weights config."""
    def make(p):
        cfg = json.loads(p.get("data/weights/model_weights_config.json"))
        fn(cfg)
        p.set("data/weights/model_weights_config.json", json.dumps(cfg).encode())
        return p.to_bytes()
    return make


def _first_cfg(cfg):
    return cfg["config"][sorted(cfg["config"])[0]]


CORPUS = {
    "nodes_not_a_list": (_mutate_model(_set(["graph_module", "graph", "nodes"], {})), ["graph.nodes"]),
    "target_not_a_string": (_mutate_model(lambda d: B.nodes(d)[0].__setitem__("target", 5)),
                            ["graph.nodes[0].target"]),
    "inputs_a_string": (_mutate_model(lambda d: B.nodes(d)[0].__setitem__("inputs", "x")),
                        ["graph.nodes[0].inputs"]),
    "argument_two_keys": (_mutate_model(lambda d: B.nodes(d)[0]["inputs"][0].__setitem__(
        "arg", {"as_int": 1, "as_float": 2.0})), ["graph.nodes[0].inputs[0].arg"]),
    "as_int_a_string": (_mutate_model(lambda d: B.first_node(d, "conv2d")["inputs"][-1].__setitem__(
        "arg", {"as_int": "one"})), ["as_int"]),
    "sizes_a_string": (_mutate_model(lambda d: list(d["graph_module"]["graph"]["tensor_values"].values())[0]
                                     .__setitem__("sizes", "abc")), ["sizes"]),
    "dtype_unknown": (_mutate_model(lambda d: list(d["graph_module"]["graph"]["tensor_values"].values())[0]
                                    .__setitem__("dtype", 99)), ["dtype"]),
    "huge_int": (_mutate_model(lambda d: list(d["graph_module"]["graph"]["tensor_values"].values())[0]
                               .__setitem__("sizes", [{"as_int": 10 ** 30}])), ["sizes[0]"]),
    "reads_undefined": (_mutate_model(lambda d: B.first_node(d, "conv2d")["inputs"][0].__setitem__(
        "arg", B.tensor_ref("nowhere"))), ["'nowhere'"]),
    "output_undefined": (_mutate_model(lambda d: d["graph_module"]["signature"]["output_specs"][0]
                                       ["user_output"].__setitem__("arg", B.tensor_ref("nowhere"))),
                         ["output_specs[0]", "'nowhere'"]),
    "signature_spec_a_list": (_mutate_model(_set(["graph_module", "signature", "input_specs"], [[1]])),
                              ["input_specs[0]"]),
    "doc_a_list": (lambda p: (p.set_model(b"[1, 2]"), p.to_bytes())[1], ["models/model.json"]),
    "not_json": (lambda p: (p.set_model(b"{nope"), p.to_bytes())[1], ["models/model.json", "JSON"]),
    "not_utf8": (lambda p: (p.set_model(b"\xff\xfe{}"), p.to_bytes())[1], ["models/model.json"]),
    "deep_json": (_deep, ["models/model.json", "deep"]),
    "zlib_error": (_corrupt_deflate, ["models/model.json"]),
    "encrypted": (_encrypted, ["models/model.json", "encrypted"]),
    "bad_central_directory": (_bad_zip, ["m.pt2"]),
    "truncated": (lambda p: p.to_bytes()[:-30], ["end record"]),
    "weight_path_missing": (_w(lambda c: _first_cfg(c).__setitem__("path_name", "nothere")), ["nothere"]),
    "weight_meta_wrong_type": (_w(lambda c: _first_cfg(c).__setitem__("tensor_meta", [])),
                               ["model_weights_config.json", "tensor_meta"]),
    "weight_outside_storage": (_w(lambda c: _first_cfg(c)["tensor_meta"].__setitem__(
        "storage_offset", {"as_int": 10 ** 6})), ["outside"]),
    "conv_stride_over_int32": (_mutate_model(lambda d: [a.__setitem__("arg", {"as_ints": [2 ** 31, 2 ** 31]})
                                                        for a in B.first_node(d, "conv2d")["inputs"]
                                                        if a["name"] == "stride"]), ["stride", "int32"]),
    "config_not_object": (_w(lambda c: c.__setitem__("config", [1])), ["model_weights_config.json", "config"]),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_item8_bad_pt2_is_one_line_naming_the_place(tmp_path, models, case):
    make, needles = CORPUS[case]
    data = make(B.Pt2(models["pt2"]))
    path = tmp_path / "m.pt2"
    path.write_bytes(data)
    out = tmp_path / "o.circle"
    proc = run_driver(["-i", str(path), "-o", str(out)], timeout=60, preexec_fn=_limited(3000))
    assert_one_line(proc, *needles)
    left = sorted(os.listdir(str(tmp_path)))   # the input, and at most the log saying what happened
    assert left in (["m.pt2"], ["m.pt2", "o.circle.log"]), left


# ----------------------------------------------------------------------- 9. argument errors

@pytest.mark.parametrize("args,needle", [
    (["-i"], "expected one argument"),
    (["--no_such_flag"], "unrecognized arguments"),
    (["-i", "m.pt"], "-o/--output_path"),
    (["--input_type", "float64", "-i", "m.pt", "-o", "m.circle"], "invalid choice"),
])
def test_item9_argument_errors_are_one_line(tmp_path, args, needle):
    proc = run_driver(args, cwd=str(tmp_path))
    assert_one_line(proc, needle, code=2)
    assert "usage:" not in proc.stderr.decode()


def test_item9_help_still_prints_usage(tmp_path):
    proc = run_driver(["-h"], cwd=str(tmp_path))
    assert proc.returncode == 0 and b"usage:" in proc.stdout


def test_item9_key_in_the_wrong_section_names_the_cfg(tmp_path):
    cfg = tmp_path / "model.cfg"
    cfg.write_text("[onecc]\none-import-pytorch-quant=True\n\n[one-import-pytorch-quant]\n"
                   "output_path=m.circle\n\n[one-optimize]\ninput_path=m.pt\n")
    proc = run_driver(["-C", str(cfg)], cwd=str(tmp_path))
    assert_one_line(proc, "-i/--input_path", "model.cfg", "[one-import-pytorch-quant]",
                    "'input_path' is in [one-optimize]", code=2)


def test_item9_cfg_value_errors_name_the_cfg(tmp_path):
    cfg = tmp_path / "model.cfg"
    cfg.write_text("[one-import-pytorch-quant]\ninput_path=missing.pt\noutput_path=m.circle\n")
    proc = run_driver(["-C", str(cfg)], cwd=str(tmp_path))
    assert_one_line(proc, "missing.pt", "no such file", "model.cfg")


def test_item9_nul_in_a_cfg_path_is_one_line(tmp_path):
    cfg = tmp_path / "model.cfg"
    cfg.write_bytes(b"[one-import-pytorch-quant]\ninput_path=a\x00b.pt\noutput_path=m.circle\n")
    proc = run_driver(["-C", str(cfg)], cwd=str(tmp_path))
    assert_one_line(proc, "NUL", "model.cfg", code=2)


def test_item9_control_characters_stay_on_one_line(tmp_path):
    cfg = tmp_path / "model.cfg"
    cfg.write_bytes(b"[one-import-pytorch-quant]\ninput_p\x1cth=m.pt\noutput_path=m.circle\n")
    proc = run_driver(["-C", str(cfg)], cwd=str(tmp_path))
    assert_one_line(proc, "input_p\\x1cth", "model.cfg")


# ----------------------------------------------------------------------- 10. right messages

def test_item10_directory_fifo_and_device_inputs(tmp_path):
    (tmp_path / "d").mkdir()
    os.mkfifo(str(tmp_path / "fifo"))
    for inp, needle in ((str(tmp_path / "d"), "is a directory"), (str(tmp_path / "fifo"), "not a regular file"),
                        ("/dev/zero", "not a regular file")):
        proc = run_driver(["-i", inp, "-o", str(tmp_path / "o.circle")], timeout=60)
        assert_one_line(proc, needle)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_item10_unreadable_input(tmp_path, models):
    p = tmp_path / "m.pt2"
    p.write_bytes(open(models["pt2"], "rb").read())
    os.chmod(str(p), 0)
    proc = run_driver(["-i", str(p), "-o", str(tmp_path / "o.circle")])
    assert_one_line(proc, "ermission")


def test_item10_unreadable_input_message_from_the_reader(tmp_path, monkeypatch):
    """(As root, the driver's own check cannot see it: test the reader's message directly.)"""
    from onelib.pytorch_quant.errors import ConversionError
    from onelib.pytorch_quant.frontend import zip_archive
    p = tmp_path / "m.pt2"
    p.write_bytes(b"PK")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    import builtins
    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(ConversionError) as e:
        zip_archive.check_regular_file(str(p))
    monkeypatch.undo()
    assert "Permission denied" in str(e.value) and "not a zip" not in str(e.value)


def test_item10_cfg_that_is_a_directory_or_device(tmp_path):
    (tmp_path / "d.cfg").mkdir()
    for cfg, needle in ((str(tmp_path / "d.cfg"), "is a directory"), ("/dev/zero", "not a regular file")):
        proc = run_driver(["-C", cfg], cwd=str(tmp_path), timeout=60)
        assert_one_line(proc, needle)


def test_item10_truncated_pt2_is_not_called_a_pickle(tmp_path, models):
    data = open(models["pt2"], "rb").read()
    (tmp_path / "t.pt2").write_bytes(data[:-22])
    proc = run_driver(["-i", str(tmp_path / "t.pt2"), "-o", str(tmp_path / "o.circle")])
    err = assert_one_line(proc, "end record")
    assert "pickle" not in err


def test_item10_non_utf8_file_name(tmp_path, models):
    folder = os.fsencode(str(tmp_path))
    name = os.path.join(folder, b"m\xff.pt")
    with open(models["pt"], "rb") as f, open(name, "wb") as g:
        g.write(f.read())
    out = os.path.join(folder, b"m.circle")
    proc = subprocess.run([sys.executable.encode(), os.fsencode(DRIVER), b"-i", name, b"-o", out,
                           b"--input_shapes", b"1,3,8,8", b"--no_verify"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert os.path.exists(out)


def test_item10_output_naming_a_folder(tmp_path, models):
    proc = run_driver(["-i", models["pt2"], "-o", "newdir/"], cwd=str(tmp_path))
    assert_one_line(proc, "newdir/", "folder")
    assert os.listdir(str(tmp_path)) == []


def test_item10_long_legal_output_name(tmp_path, models):
    out = tmp_path / ("a" * 244 + ".circle")   # 251 characters; the log adds 4: 255
    proc = run_driver(["-i", models["pt2"], "-o", str(out), "--no_verify"])
    assert proc.returncode == 0, proc.stderr
    assert out.exists()


def test_item10_numpy_reprs_become_numbers():
    from onelib.pytorch_quant.errors import ConversionError
    line = _driver_module()._one_line(ConversionError("m.pt2: dims [np.int64(0), np.int64(3)] scale "
                                                      "np.float32(0.5) flag np.True_"))
    assert line == NAME + ": ConversionError: m.pt2: dims [0, 3] scale 0.5 flag np.True_"


def test_item10_no_numpy_reprs_in_messages(tmp_path, models):
    p = B.Pt2(models["pt2"])
    doc = p.model()
    node = B.first_node(doc, "quantize_per_tensor")
    for a in node["inputs"]:
        if a["name"] == "scale":
            a["arg"] = {"as_float": 0.0}
    p.set_model(doc)
    proc = run_driver(["-i", p.save(str(tmp_path / "m.pt2")), "-o", str(tmp_path / "o.circle")])
    err = assert_one_line(proc)
    assert "np." not in err and "float32(" not in err and "int64(" not in err
