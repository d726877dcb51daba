"""The driver's contracts: onecc discovery, the polyglot header, cfg semantics, errors, files.

Most tests need neither torch nor the converter core: they run the driver in a subprocess on
inputs that fail early, or call its ``main()`` in this process with ``api.convert`` and the
built-in checker replaced by fakes. The tests at the end run a real conversion of a tiny
eager-quantized model.
"""
import ast
import json
import os
import shutil
import subprocess
import sys

import pytest

from driver_helpers import (
    REPO, NAME, DRIVER, SECTION, run_driver, assert_one_line_error, driver_module, write, ini_cfg, parse,
    _DISCOVERY_SCRIPT, _bash_env, _make_blocker)


# ------------------------------------------------------------------------------ onecc discovery

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
