"""Helpers of the driver tests (test_driver.py, test_driver_flow.py): run the driver, load it as onecc does."""
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import textwrap

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


def _bash_env(path_first):
    env = dict(os.environ)
    env["PATH"] = str(path_first) + os.pathsep + env.get("PATH", "")
    return env
