"""The driver's import flow (with fakes for convert and verify), tools.py, and real conversions of a
tiny eager-quantized model (the converter core; see test_driver.py for discovery, header and cfg).
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import types

import pytest

from driver_helpers import (
    NAME, DRIVER, run_driver, err_lines, driver_module, write, ini_cfg, _DISCOVERY_SCRIPT, _bash_env)


# ------------------------------------------------ the import flow, with fakes for convert/verify

class FakeFinding(object):
    def __init__(self, severity, text):
        self.severity = severity
        self.text = text

    def __str__(self):
        return "%s [fake_rule] %s" % (self.severity, self.text)


class Fakes(object):
    def __init__(self):
        self.circle = b"\x18\x00\x00\x00CIR0 fake circle payload"
        self.findings = []
        self.targets = []
        self.convert_error = None
        self.options = None


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    """``api.convert`` and ``verify.verify_circle`` replaced; no ONE tools anywhere."""
    import onelib.pytorch_quant as pkg
    from onelib.pytorch_quant import api

    f = Fakes()

    def convert(source, options=None, progress=None):
        f.options = options
        progress("reading %s" % source)
        if f.convert_error is not None:
            raise f.convert_error
        progress("source graph: 3 ops")
        return api.Conversion(f.circle, None, ["a note for the log"])

    def verify_circle(data, target="onert"):
        assert data == f.circle
        f.targets.append(target)
        return list(f.findings)

    fake_verify = types.ModuleType("onelib.pytorch_quant.verify")
    fake_verify.verify_circle = verify_circle
    fake_verify.granularity_of = lambda data: None
    monkeypatch.setattr(api, "convert", convert)
    monkeypatch.setitem(sys.modules, "onelib.pytorch_quant.verify", fake_verify)
    monkeypatch.setattr(pkg, "verify", fake_verify, raising=False)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty) + os.pathsep + "/bin" + os.pathsep + "/usr/bin")
    monkeypatch.delenv("ONE_BIN_DIR", raising=False)
    monkeypatch.chdir(str(tmp_path))
    import zipfile
    with zipfile.ZipFile("m.pt", "w") as z:  # passes the driver's format sniffing
        z.writestr("m/constants.pkl", b"")
        z.writestr("m/code/m.py", b"")
    return f


def _files(folder="."):
    return sorted(n for n in os.listdir(folder) if n != "empty-path")


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def _fake_tool(folder, name, script):
    os.makedirs(str(folder), exist_ok=True)
    path = os.path.join(str(folder), name)
    write(path, "#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    return path


def test_flow_writes_output_and_log(fakes, capsys):
    old = os.umask(0o022)
    try:
        rc = driver_module().main(["-i", "m.pt", "-o", "m.circle", "--input_shapes", "1,3,8,8",
                                   "--profile", "onert", "--input_type", "uint8"])
    finally:
        os.umask(old)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err == ""
    assert _read("m.circle", "rb") == fakes.circle
    assert stat.S_IMODE(os.stat("m.circle").st_mode) == 0o644
    assert _files() == ["m.circle", "m.circle.log", "m.pt"]  # no temp file left
    log = _read("m.circle.log")
    for expected in ("reading m.pt", "source graph: 3 ops", "a note for the log",
                     "built-in check: 0 error(s), 0 warning(s)", "ONE tool check skipped", "wrote "):
        assert expected in log, expected
    opts = fakes.options
    assert opts.profile == "onert" and opts.input_type == "uint8" and opts.input_shapes == [[1, 3, 8, 8]]
    assert opts.strict is False and opts.output_type == "float32"
    assert fakes.targets == ["onert"]


def test_flow_native_stderr_goes_to_the_log(fakes, monkeypatch, capfd):
    from onelib.pytorch_quant import api
    real = api.convert

    def noisy(source, options=None, progress=None):
        os.write(2, b"[W native] torch says something\n")
        return real(source, options, progress)

    monkeypatch.setattr(api, "convert", noisy)
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 0
    assert "torch says something" not in capfd.readouterr().err
    assert "[W native] torch says something" in _read("m.circle.log")


def test_flow_verbose_prints_progress(fakes, capsys):
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle", "-V"]) == 0
    err = capsys.readouterr().err
    assert "%s: reading m.pt" % NAME in err and "source graph" in err


def test_flow_softmax_scale_picks_luci_target(fakes):
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle", "--softmax_scale", "1/255"]) == 0
    assert fakes.targets == ["luci"] and fakes.options.softmax_scale == "1/255"


def test_flow_cfg_false_reaches_options_as_false(fakes, tmp_path):
    cfg = ini_cfg(tmp_path, "input_path=m.pt\noutput_path=m.circle\nfc_as_conv=False\nstrict=False\n")
    assert driver_module().main(["-C", cfg]) == 0
    assert fakes.options.fc_as_conv is False and fakes.options.strict is False


def test_flow_builtin_errors_fail_and_leave_nothing(fakes, capsys):
    with open("m.circle", "wb") as f:
        f.write(b"OLD")
    fakes.findings = [FakeFinding("error", "bias scale is wrong on 'fc.bias'"),
                      FakeFinding("warning", "softmax uses 1/256")]
    rc = driver_module().main(["-i", "m.pt", "-o", "m.circle"])
    err = err_lines(capsys.readouterr().err)
    assert rc == 255
    assert len(err) == 2  # the warning, then the one error line
    assert "warning" in err[0] and "softmax uses 1/256" in err[0]
    assert err[1].startswith(NAME + ": VerificationError: ") and "fc.bias" in err[1]
    assert _read("m.circle", "rb") == b"OLD"  # the previous output is untouched
    assert _files() == ["m.circle", "m.circle.log", "m.pt"]
    assert "bias scale is wrong" in _read("m.circle.log")


def test_flow_builtin_warnings_do_not_fail(fakes, capsys):
    fakes.findings = [FakeFinding("warning", "softmax uses 1/256")]
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 0
    err = err_lines(capsys.readouterr().err)
    assert len(err) == 1 and "softmax uses 1/256" in err[0]
    assert "softmax uses 1/256" in _read("m.circle.log")


def test_flow_one_tool_failure_exits_with_its_code(fakes, capsys, tmp_path):
    bin_dir = tmp_path / "one-bin"
    _fake_tool(bin_dir, "circle-verify", 'echo "[      FAIL ] Check $1"\nexit 3\n')
    rc = driver_module().main(["-i", "m.pt", "-o", "m.circle", "--one_bin_dir", str(bin_dir)])
    err = err_lines(capsys.readouterr().err)
    assert rc == 3
    assert len(err) == 1 and "circle-verify" in err[0] and "exit code 3" in err[0]
    assert _files() == ["m.circle.log", "m.pt", "one-bin"]
    log = _read("m.circle.log")
    assert os.path.join(str(bin_dir), "circle-verify") in log and "[      FAIL ] Check" in log


def test_flow_no_verify_skips_one_tools(fakes, tmp_path):
    bin_dir = tmp_path / "one-bin"
    _fake_tool(bin_dir, "circle-verify", "exit 3\n")
    rc = driver_module().main(["-i", "m.pt", "-o", "m.circle", "--one_bin_dir", str(bin_dir),
                               "--no_verify"])
    assert rc == 0
    assert "skipped (--no_verify)" in _read("m.circle.log")


def test_flow_one_bin_dir_from_environment(fakes, monkeypatch, tmp_path):
    bin_dir = tmp_path / "one-bin"
    _fake_tool(bin_dir, "circle-verify", 'echo "[      PASS ] Check $1"\n')
    monkeypatch.setenv("ONE_BIN_DIR", str(bin_dir))
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 0
    assert "[      PASS ] Check" in _read("m.circle.log")


def test_flow_one_bin_dir_without_tools_is_an_error(fakes, capsys, tmp_path):
    (tmp_path / "not-one").mkdir()
    rc = driver_module().main(["-i", "m.pt", "-o", "m.circle", "--one_bin_dir", str(tmp_path / "not-one")])
    err = err_lines(capsys.readouterr().err)
    assert rc == 255 and len(err) == 1 and "not-one" in err[0]
    assert not os.path.exists("m.circle")


@pytest.mark.parametrize("keep", [False, True])
def test_flow_fake_quantize_check_and_intermediate(fakes, tmp_path, keep):
    bin_dir = tmp_path / "one-bin"
    _fake_tool(bin_dir, "circle-quantizer",
               '[ "$1" = --fake_quantize ] || exit 9\ncp "$2" "$3"\necho fake-quantized\n')
    argv = ["-i", "m.pt", "-o", "m.circle", "--one_bin_dir", str(bin_dir)]
    if keep:
        argv.append("--save_intermediate")
    assert driver_module().main(argv) == 0
    expected = ["m.circle", "m.circle.log", "m.pt", "one-bin"]
    if keep:
        expected.append("m.fake_quant.circle")
        assert _read("m.fake_quant.circle", "rb") == fakes.circle
    assert _files() == sorted(expected)
    log = _read("m.circle.log")
    assert "--fake_quantize" in log and "fake-quantized" in log


def test_flow_internal_error_is_one_line_with_hint(fakes, capsys):
    fakes.convert_error = TypeError("boom")
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 255
    err = err_lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith(NAME + ": TypeError: boom") and "-V" in err[0]
    assert _files() == ["m.circle.log", "m.pt"]
    assert "Traceback" in _read("m.circle.log")  # the log keeps it for a bug report


def test_flow_internal_error_verbose_prints_traceback(fakes, capsys):
    fakes.convert_error = TypeError("boom")
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle", "-V"]) == 255
    err = capsys.readouterr().err
    assert "Traceback" in err and err_lines(err)[-1].startswith(NAME + ": TypeError: boom")


def test_flow_conversion_error_is_one_line(fakes, capsys):
    from onelib.pytorch_quant.errors import ConversionError
    fakes.convert_error = ConversionError("m.pt: features.3 (aten::foo): not supported\nsecond line")
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 255
    err = err_lines(capsys.readouterr().err)
    assert err == [NAME + ": ConversionError: m.pt: features.3 (aten::foo): not supported second line"]


def test_flow_missing_dependency_vs_broken_package(fakes, capsys):
    fakes.convert_error = ModuleNotFoundError("No module named 'torch'", name="torch")
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 255
    err = err_lines(capsys.readouterr().err)
    assert len(err) == 1 and "No module named 'torch'" in err[0] and "requirements.txt" in err[0]
    fakes.convert_error = ImportError("cannot import name 'x'", name="onelib.pytorch_quant.ops")
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 255
    err = err_lines(capsys.readouterr().err)
    assert len(err) == 1 and "internal error" in err[0]


def test_flow_keyboard_interrupt_exits_130(fakes):
    fakes.convert_error = KeyboardInterrupt()
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 130
    assert not os.path.exists("m.circle")


def test_flow_missing_checker_is_a_clear_error(fakes, monkeypatch, capsys):
    import onelib.pytorch_quant as pkg
    monkeypatch.setitem(sys.modules, "onelib.pytorch_quant.verify", None)
    monkeypatch.delattr(pkg, "verify", raising=False)
    assert driver_module().main(["-i", "m.pt", "-o", "m.circle"]) == 255
    err = err_lines(capsys.readouterr().err)
    assert len(err) == 1 and "verify.py" in err[0]
    assert not os.path.exists("m.circle")


def test_verify_only_prints_findings(fakes, capsys):
    with open("x.circle", "wb") as f:
        f.write(fakes.circle)
    fakes.findings = [FakeFinding("warning", "just a warning")]
    assert driver_module().main(["--verify_only", "x.circle"]) == 0
    out = capsys.readouterr().out
    assert "just a warning" in out and "0 error(s), 1 warning(s)" in out
    fakes.findings.append(FakeFinding("error", "a real problem"))
    assert driver_module().main(["--verify_only", "x.circle"]) == 1
    assert "a real problem" in capsys.readouterr().out


# ----------------------------------------------------------------------------------- tools.py

def test_tool_lookup_order(tmp_path, monkeypatch):
    from onelib.pytorch_quant import tools
    env_dir, onecc_dir, drv_dir = tmp_path / "env", tmp_path / "onecc-real", tmp_path / "driver"
    _fake_tool(env_dir, "circle-verify", "exit 0\n")
    _fake_tool(onecc_dir, "circle-quantizer", "exit 0\n")
    _fake_tool(onecc_dir, "onecc", "exit 0\n")
    link_dir = tmp_path / "usr-bin"
    link_dir.mkdir()
    os.symlink(str(onecc_dir / "onecc"), str(link_dir / "onecc"))
    drv_dir.mkdir()
    environ = {"PATH": str(link_dir), "ONE_BIN_DIR": str(env_dir)}
    assert tools.find_one_bin_dir(None, environ, str(drv_dir)) == str(env_dir)
    environ.pop("ONE_BIN_DIR")
    assert tools.find_one_bin_dir(None, environ, str(drv_dir)) == str(onecc_dir)
    _fake_tool(drv_dir, "circle-quantizer", "exit 0\n")
    assert tools.find_one_bin_dir(None, environ, str(drv_dir)) == str(drv_dir)
    assert tools.find_one_bin_dir(str(env_dir), environ, str(drv_dir)) == str(env_dir)
    with pytest.raises(tools.ToolError):
        tools.find_one_bin_dir(str(tmp_path), environ, str(drv_dir))
    if not tools.has_tools(tools.DEBIAN_BIN_DIR):
        assert tools.find_one_bin_dir(None, {"PATH": str(tmp_path)}, str(tmp_path)) is None


def test_run_tool_logs_command_and_output(tmp_path):
    import io
    from onelib.pytorch_quant import tools
    tool = _fake_tool(tmp_path, "t", 'echo out; echo err >&2; exit 4\n')
    log = io.BytesIO()
    assert tools.run_tool([tool, "a b"], log) == 4
    text = log.getvalue().decode()
    assert text.splitlines()[0] == "%s 'a b'" % tool
    assert "out" in text and "err" in text


# ------------------------------------------------------- real conversions (need the converter core)

def needs_core(fn):
    """The converter core and torch are part of this repo's test environment: their absence is a
    failure, never a skip."""
    return fn


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """TorchScript files of two eager-quantized models (x86 qconfig): conv, and conv + linear."""
    import warnings

    import torch
    import torch.ao.quantization as tq
    import torch.nn as nn

    class ConvNet(nn.Module):
        def __init__(self, linear):
            super(ConvNet, self).__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 6 * 6, 5) if linear else None

        def forward(self, x):
            x = self.conv(self.quant(x))
            if self.fc is not None:
                x = self.fc(torch.flatten(x, 1))
            return self.dequant(x)

    folder = tmp_path_factory.mktemp("tiny")
    paths = {}
    old_engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = "x86"
    try:
        for name, linear in (("conv", False), ("convfc", True)):
            torch.manual_seed(0)
            model = ConvNet(linear).eval()
            model.qconfig = tq.get_default_qconfig("x86")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepared = tq.prepare(model)
                for _ in range(4):
                    prepared(torch.randn(1, 3, 8, 8))
                quantized = tq.convert(prepared)
                traced = torch.jit.trace(quantized, torch.randn(1, 3, 8, 8))
                path = str(folder / (name + ".pt"))
                torch.jit.save(traced, path)
            paths[name] = path
    finally:
        torch.backends.quantized.engine = old_engine
    return paths


def _op_names(data):
    from circle_schema.v0_10.circle.BuiltinOperator import BuiltinOperator
    from circle_schema.v0_10.circle.Model import Model
    names = dict((v, k) for k, v in vars(BuiltinOperator).items() if not k.startswith("_"))
    model = Model.GetRootAs(data, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        code = codes[graph.Operators(i).OpcodeIndex()]
        out.append(names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"))
    return out


def _python3_on_path(tmp_path):
    """A folder whose python3 is this interpreter, for the header's fallback in onecc-style runs."""
    pybin = tmp_path / "pybin"
    pybin.mkdir()
    write(pybin / "python3", '#!/bin/sh\nexec "%s" "$@"\n' % sys.executable)
    os.chmod(str(pybin / "python3"), 0o755)
    return pybin


@needs_core
def test_real_conversion_from_command_line(tiny_models, tmp_path):
    out = str(tmp_path / "conv.circle")
    proc = run_driver(["-i", tiny_models["conv"], "-o", out, "--input_shapes", "1,3,8,8"])
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as f:
        data = f.read()
    assert data[4:8] == b"CIR0"
    assert "CONV_2D" in _op_names(data)
    assert sorted(os.listdir(str(tmp_path))) == ["conv.circle", "conv.circle.log"]
    log = _read(out + ".log")
    assert "source graph" in log and "built-in check: 0 error(s)" in log
    proc = run_driver(["--verify_only", out])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_core
def test_real_conversion_cfg_booleans_reach_the_converter(tiny_models, tmp_path):
    ops = {}
    for value in ("False", "True"):
        cfg = ini_cfg(tmp_path, """
            input_path=%s
            output_path=fc_%s.circle
            input_shapes=1,3,8,8
            fc_as_conv=%s
            """ % (tiny_models["convfc"], value, value), name="fc_%s.cfg" % value)
        proc = run_driver(["-C", cfg], cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr
        ops[value] = _op_names(_read(str(tmp_path / ("fc_%s.circle" % value)), "rb"))
    assert "FULLY_CONNECTED" in ops["False"]
    assert "FULLY_CONNECTED" not in ops["True"] and ops["True"].count("CONV_2D") == 2


@needs_core
def test_real_onecc_style_run(tiny_models, tmp_path):
    """onecc's path: detect the driver in a bin folder, then run <bin>/<section> --config --section."""
    import configparser
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(DRIVER, str(bin_dir / NAME))
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(tiny_models["conv"], str(work / "example_q.pt"))
    cfg = write(work / "model.cfg", """
        [onecc]
        one-import-pytorch-quant=True
        one-optimize=False

        [one-import-pytorch-quant]
        input_path=example_q.pt
        output_path=example_q.circle
        input_shapes=1,3,8,8
        fc_as_conv=False
        """)
    proc = subprocess.run([sys.executable, "-c", _DISCOVERY_SCRIPT, str(tmp_path / "none"), str(bin_dir)],
                          stdout=subprocess.PIPE, universal_newlines=True, timeout=120)
    drivers = json.loads(proc.stdout.strip().splitlines()[-1])["drivers"]
    parser = configparser.ConfigParser()
    parser.read(cfg)
    sections = [s for s in drivers if parser.has_option("onecc", s) and parser.getboolean("onecc", s)]
    assert sections == [NAME]
    env = _bash_env(_python3_on_path(tmp_path))
    proc = subprocess.run([str(bin_dir / NAME), "--config", cfg, "--section", NAME],
                          cwd=str(work), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (work / "example_q.circle").exists() and (work / "example_q.circle.log").exists()
