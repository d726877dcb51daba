"""The driver's contracts: onecc discovery, the polyglot header, cfg semantics, errors, files.

Most tests need neither torch nor the converter core: they run the driver in a subprocess on
inputs that fail early, or call its ``main()`` in this process with ``api.convert`` and the
built-in checker replaced by fakes. The tests at the end run a real conversion of a tiny
eager-quantized model.
"""
import ast
import importlib.machinery
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import types

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "one-import-pytorch-quant"
DRIVER = os.path.join(REPO, NAME)
SECTION = NAME

if REPO not in sys.path:
    sys.path.insert(0, REPO)


# ------------------------------------------------------------------------------------ helpers

def run_driver(args, cwd=None, env=None, timeout=300):
    """The driver in a subprocess with this interpreter (the one with the test dependencies)."""
    return subprocess.run([sys.executable, DRIVER] + list(args), cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


def err_lines(text):
    return [line for line in text.splitlines() if line.strip()]


def assert_one_line_error(proc, *needles, code=255):
    lines = err_lines(proc.stderr)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(NAME + ": "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


_MODULE = None


def driver_module():
    """The driver loaded the way onecc loads it (SourceFileLoader + exec_module)."""
    global _MODULE
    if _MODULE is None:
        loader = importlib.machinery.SourceFileLoader("one_import_pytorch_quant_under_test", DRIVER)
        spec = importlib.util.spec_from_loader(loader.name, loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        _MODULE = module
    return _MODULE


def write(path, text):
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def ini_cfg(tmp_path, body, section=SECTION, name="model.cfg"):
    return write(tmp_path / name, "[onecc]\n%s=True\n\n[%s]\n%s" % (NAME, section, textwrap.dedent(body)))


def parse(argv):
    return driver_module().parse_arguments(argv)


# ------------------------------------------------------------------------------ onecc discovery

_BLOCKED = ("torch", "numpy", "flatbuffers", "circle_schema", "tico", "onert", "torchao")

# What onecc does to find import drivers (a reproduction of the documented behaviour of
# one-cmds' onelib/utils.py detect_one_import_drivers), run in a Python where the heavy
# packages cannot be imported, as in a ONE venv that lacks them.
_DISCOVERY_SCRIPT = r"""
import importlib.machinery, importlib.util, json, os, sys
blocker, bin_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, blocker)
found = {}
for module_name in sorted(os.listdir(bin_dir)):
    full_path = os.path.join(bin_dir, module_name)
    if not os.path.isfile(full_path) or not module_name.startswith("one-import-"):
        continue
    loader = importlib.machinery.SourceFileLoader(module_name, full_path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(module_name, loader))
    try:
        loader.exec_module(module)
        if hasattr(module, "get_driver_cfg_section"):
            found[module.get_driver_cfg_section()] = module_name
    except BaseException:
        pass
heavy = sorted(m for m in %r if m in sys.modules)
print(json.dumps({"drivers": found, "heavy_imported": heavy,
                  "tracebacklimit": getattr(sys, "tracebacklimit", None)}))
""" % (_BLOCKED,)


def _make_blocker(folder):
    for mod in _BLOCKED:
        os.makedirs(os.path.join(folder, mod))
        write(os.path.join(folder, mod, "__init__.py"),
              "raise ImportError('%s is not installed in this venv')\n" % mod)
    return folder


def test_onecc_discovers_driver_without_torch_or_numpy(tmp_path):
    blocker = _make_blocker(str(tmp_path / "blocker"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(DRIVER, str(bin_dir / NAME))  # how a user adds the driver to ONE's bin
    # decoys onecc must skip: a shell script, a module that raises, a module without the hook
    write(bin_dir / "one-import-shell", "#!/bin/sh\necho hello\n")
    write(bin_dir / "one-import-raises", "raise RuntimeError('no')\n")
    write(bin_dir / "one-import-nohook", "X = 1\n")
    proc = subprocess.run([sys.executable, "-I", "-c", _DISCOVERY_SCRIPT, blocker, str(bin_dir)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["drivers"] == {NAME: NAME}
    assert result["heavy_imported"] == []
    # loading must not change onecc's own process (the driver sets it only when run as a script)
    assert result["tracebacklimit"] is None


def test_get_driver_cfg_section_is_the_file_name():
    module = driver_module()
    assert module.get_driver_cfg_section() == os.path.basename(DRIVER) == NAME


def test_driver_file_is_executable_python_without_extension():
    assert os.access(DRIVER, os.X_OK)
    assert "." not in os.path.basename(DRIVER)
    with open(DRIVER) as f:
        first = f.readline()
    assert first.startswith("#!") and "bash" in first


@pytest.mark.parametrize("rel", [NAME, "onelib/pytorch_quant/cfgfile.py", "onelib/pytorch_quant/tools.py"])
def test_sources_parse_as_python_3_8(rel):
    with open(os.path.join(REPO, rel)) as f:
        source = f.read()
    ast.parse(source, rel, feature_version=(3, 8))


def test_top_level_imports_only_the_standard_library():
    with open(DRIVER) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    assert names <= {"argparse", "ast", "contextlib", "os", "re", "sys", "tempfile", "traceback", "warnings"}, names


def test_no_onelib_init_file():
    # onelib/ is a namespace package, so ONE's own onelib/ can sit in the same bin directory
    assert not os.path.exists(os.path.join(REPO, "onelib", "__init__.py"))


# --------------------------------------------------------------------------- polyglot header

def _version_line():
    with open(os.path.join(REPO, "onelib", "pytorch_quant", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return "%s %s" % (NAME, ast.literal_eval(line.split("=", 1)[1].strip()))
    raise AssertionError("no __version__")


def _marker_python(path, marker):
    """An executable that notes it was used, then runs this interpreter."""
    write(path, '#!/bin/sh\necho used > "%s"\nexec "%s" "$@"\n' % (marker, sys.executable))
    os.chmod(str(path), 0o755)


def _bash_env(path_first):
    env = dict(os.environ)
    env["PATH"] = str(path_first) + os.pathsep + env.get("PATH", "")
    return env


def test_bash_header_falls_back_to_python3_without_venv(tmp_path):
    real = tmp_path / "install"
    real.mkdir()
    shutil.copy2(DRIVER, str(real / NAME))
    os.symlink(os.path.join(REPO, "onelib"), str(real / "onelib"))
    pybin = tmp_path / "pybin"
    pybin.mkdir()
    marker = tmp_path / "python3-used"
    _marker_python(pybin / "python3", marker)
    proc = subprocess.run(["bash", str(real / NAME), "--version"], env=_bash_env(pybin),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == _version_line()
    assert marker.exists()


def test_bash_header_prefers_venv_beside_the_real_file(tmp_path):
    real = tmp_path / "install"
    (real / "venv" / "bin").mkdir(parents=True)
    shutil.copy2(DRIVER, str(real / NAME))
    os.symlink(os.path.join(REPO, "onelib"), str(real / "onelib"))
    venv_marker = tmp_path / "venv-used"
    _marker_python(real / "venv" / "bin" / "python", venv_marker)
    # a python3 on PATH that must not be used
    pybin = tmp_path / "pybin"
    pybin.mkdir()
    path_marker = tmp_path / "python3-used"
    _marker_python(pybin / "python3", path_marker)
    # called through a symlink in another folder, as from ONE's bin: readlink -f finds venv/
    other = tmp_path / "one-bin"
    other.mkdir()
    os.symlink(str(real / NAME), str(other / NAME))
    proc = subprocess.run(["bash", str(other / NAME), "--version"], env=_bash_env(pybin),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == _version_line()
    assert venv_marker.exists() and not path_marker.exists()


def test_symlinked_driver_runs_version(tmp_path):
    os.symlink(DRIVER, str(tmp_path / NAME))
    proc = subprocess.run(["bash", str(tmp_path / NAME), "-v"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == _version_line()


def test_version_needs_no_torch(tmp_path):
    blocker = _make_blocker(str(tmp_path / "blocker"))
    env = dict(os.environ, PYTHONPATH=blocker)
    proc = run_driver(["--version"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == _version_line()


# ------------------------------------------------------------------------------------------ cfg

@pytest.mark.parametrize("text, expected", [
    ("False", False), ("false", False), ("0", False), ("no", False), ("n", False), ("off", False),
    ("True", True), ("true", True), ("1", True), ("yes", True), ("Y", True), ("on", True),
])
def test_cfg_booleans_are_normalised(tmp_path, text, expected):
    cfg = ini_cfg(tmp_path, """
        input_path=m.pt
        output_path=m.circle
        fc_as_conv=%s
        strict=%s
        """ % (text, text))
    args = parse(["-C", cfg])
    assert args.fc_as_conv is expected
    assert args.strict is expected


def test_cfg_non_boolean_is_an_error_naming_key_and_section(tmp_path):
    cfg = ini_cfg(tmp_path, """
        input_path=m.pt
        output_path=m.circle
        fc_as_conv=maybe
        """)
    proc = run_driver(["-C", cfg], cwd=str(tmp_path))
    assert_one_line_error(proc, "fc_as_conv", "[%s]" % SECTION, "maybe")


def test_cfg_unknown_key_is_an_error_naming_key_and_section(tmp_path):
    cfg = ini_cfg(tmp_path, """
        input_path=m.pt
        output_path=m.circle
        quantized_dtyp=uint8
        """)
    proc = run_driver(["-C", cfg], cwd=str(tmp_path))
    assert_one_line_error(proc, "quantized_dtyp", "[%s]" % SECTION)
    assert sorted(os.listdir(str(tmp_path))) == ["model.cfg"]  # no output, no log


def test_cfg_keys_are_case_sensitive(tmp_path):
    cfg = ini_cfg(tmp_path, "Input_Path=m.pt\noutput_path=m.circle\n")
    proc = run_driver(["-C", cfg], cwd=str(tmp_path))
    assert_one_line_error(proc, "Input_Path", "[%s]" % SECTION)


def test_cfg_missing_section_is_an_error(tmp_path):
    cfg = write(tmp_path / "model.cfg", "[onecc]\none-import-pytorch-quant=True\n")
    proc = run_driver(["-C", cfg], cwd=str(tmp_path))
    assert_one_line_error(proc, "[%s]" % SECTION)


def test_cfg_missing_file_is_an_error(tmp_path):
    proc = run_driver(["-C", str(tmp_path / "nope.cfg")], cwd=str(tmp_path))
    assert_one_line_error(proc, "nope.cfg")


def test_cfg_bad_choice_is_an_error(tmp_path):
    cfg = ini_cfg(tmp_path, "input_path=m.pt\noutput_path=m.circle\ninput_type=int8\n")
    proc = run_driver(["-C", cfg], cwd=str(tmp_path))
    assert_one_line_error(proc, "input_type", "int8", "[%s]" % SECTION)


def test_cfg_values_and_command_line_precedence(tmp_path):
    cfg = ini_cfg(tmp_path, """
        input_path=m.pt   ; inline comments are allowed, as in one-cmds
        output_path=m.circle   # this style too
        input_shapes=1,3,224,224:1,10
        input_type=uint8
        output_type=int16
        io_layout=nhwc
        softmax_scale=1/255
        save_intermediate=True
        """)
    args = parse(["-C", cfg])
    assert args.input_path == "m.pt" and args.output_path == "m.circle"
    assert args.input_shapes == [[1, 3, 224, 224], [1, 10]]
    assert (args.input_type, args.output_type, args.io_layout) == ("uint8", "int16", "nhwc")
    assert args.softmax_scale == "1/255"
    assert args.save_intermediate is True and args.fc_as_conv is False
    # a value given on the command line wins; one not given comes from the cfg
    args = parse(["-C", cfg, "--input_type", "int16", "-o", "other.circle", "--fc_as_conv"])
    assert args.input_type == "int16" and args.output_path == "other.circle"
    assert args.output_type == "int16" and args.fc_as_conv is True


def test_cfg_section_option_is_honoured(tmp_path):
    cfg = ini_cfg(tmp_path, "input_path=a.pt\noutput_path=a.circle\n", section="my-import")
    args = parse(["-C", cfg, "-S", "my-import"])
    assert args.input_path == "a.pt"


def test_onecc_style_arguments_are_accepted(tmp_path):
    cfg = ini_cfg(tmp_path, "input_path=a.pt\noutput_path=a.circle\n")
    args = parse(["--config", cfg, "--section", SECTION, "--verbose", "-O", "O1", "-T", "npu"])
    assert args.verbose is True and args.input_path == "a.pt"


def test_cfg_toml(tmp_path):
    cfg = write(tmp_path / "model.toml", """
        [one-import-pytorch-quant]
        input_path = "m.pt"
        output_path = "m.circle"
        input_shapes = [[1, 3, 8, 8], [1, 10]]
        input_type = "uint8"
        fc_as_conv = false
        strict = true
        """)
    args = parse(["-C", cfg])
    assert args.input_path == "m.pt" and args.input_shapes == [[1, 3, 8, 8], [1, 10]]
    assert args.input_type == "uint8" and args.fc_as_conv is False and args.strict is True


def test_cfg_toml_detected_by_content(tmp_path):
    cfg = write(tmp_path / "model.cfg", """
        [one-import-pytorch-quant]
        input_path = "m.pt"   # quoted: TOML, not INI
        output_path = "m.circle"
        input_shapes = "1,3,8,8"
        fc_as_conv = true
        """)
    args = parse(["-C", cfg])
    assert args.input_path == "m.pt" and args.input_shapes == [[1, 3, 8, 8]] and args.fc_as_conv is True


def test_cfg_toml_errors(tmp_path):
    cfg = write(tmp_path / "model.toml", """
        [one-import-pytorch-quant]
        input_path = "m.pt"
        output_path = "m.circle"
        fc_as_conv = "maybe"
        """)
    proc = run_driver(["-C", cfg], cwd=str(tmp_path))
    assert_one_line_error(proc, "fc_as_conv", "[%s]" % SECTION)
    cfg = write(tmp_path / "other.toml", '[one-import-pytorch-quant]\nbogus = 1\n')
    proc = run_driver(["-C", cfg], cwd=str(tmp_path))
    assert_one_line_error(proc, "bogus", "[%s]" % SECTION)


def test_example_cfgs_agree():
    import configparser
    ini = parse(["-C", os.path.join(REPO, "cfg", "example.cfg")])
    toml = parse(["-C", os.path.join(REPO, "cfg", "example.toml")])
    assert vars(ini) == dict(vars(toml), config=ini.config)
    assert ini.input_path == "example_q.pt" and ini.output_path == "example_q.circle"
    assert ini.fc_as_conv is True  # the example runs on onert (per-channel FC)
    onecc = configparser.ConfigParser()
    onecc.read(os.path.join(REPO, "cfg", "example.cfg"))
    assert onecc.getboolean("onecc", NAME) is True


@pytest.mark.parametrize("text, shapes", [
    ("1,3,224,224", [[1, 3, 224, 224]]),
    ("1,3,224,224:1,10", [[1, 3, 224, 224], [1, 10]]),
    (" 1, 3, 8, 8 ", [[1, 3, 8, 8]]),
])
def test_input_shapes(text, shapes):
    args = parse(["-i", "m.pt", "-o", "m.circle", "--input_shapes", text])
    assert args.input_shapes == shapes


def test_bad_input_shapes_is_one_line(tmp_path):
    proc = run_driver(["-i", "m.pt", "-o", "m.circle", "--input_shapes", "1,3,x"], cwd=str(tmp_path))
    assert_one_line_error(proc, "1,3,x")


# -------------------------------------------------------------------------- command-line errors

def test_missing_output_path_exits_2(tmp_path):
    proc = run_driver(["-i", "m.pt"], cwd=str(tmp_path))
    assert proc.returncode == 2
    assert "the following arguments are required: -o/--output_path\n" in proc.stderr


def test_missing_both_paths_exits_2(tmp_path):
    proc = run_driver([], cwd=str(tmp_path))
    assert proc.returncode == 2
    assert "-i/--input_path -o/--output_path" in proc.stderr


def test_missing_input_file_is_one_line_naming_it(tmp_path):
    proc = run_driver(["-i", "no_such_model.pt", "-o", "m.circle"], cwd=str(tmp_path))
    assert_one_line_error(proc, "no_such_model.pt")
    assert os.listdir(str(tmp_path)) == []


def test_input_that_is_not_a_model_is_one_line(tmp_path):
    write(tmp_path / "m.pt", "not a zip\n")
    proc = run_driver(["-i", "m.pt", "-o", "m.circle"], cwd=str(tmp_path))
    assert_one_line_error(proc, "m.pt")
    assert os.listdir(str(tmp_path)) == ["m.pt"]


def test_missing_output_folder_is_one_line(tmp_path):
    # a real archive layout is not needed to reach the folder check: use a TorchScript-like zip
    import zipfile
    with zipfile.ZipFile(str(tmp_path / "m.pt"), "w") as z:
        z.writestr("m/constants.pkl", b"")
    proc = run_driver(["-i", "m.pt", "-o", "nowhere/m.circle"], cwd=str(tmp_path))
    assert_one_line_error(proc, "nowhere")


def test_verify_only_missing_file(tmp_path):
    proc = run_driver(["--verify_only", "nope.circle"], cwd=str(tmp_path))
    assert_one_line_error(proc, "nope.circle")


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
