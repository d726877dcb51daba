"""The one option spec (onelib/pytorch_quant/options.py): the driver's flags, its cfg keys,
ConvertOptions and the fidelity report's flags are all made from it, and every option is checked
when ConvertOptions is built. Torch-free and fast."""
import importlib.machinery
import importlib.util
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from onelib.pytorch_quant import api, options  # noqa: E402
from onelib.pytorch_quant.errors import ConversionError  # noqa: E402

DRIVER = os.path.join(REPO, "one-import-pytorch-quant")
_DRV = []


def driver():
    if not _DRV:
        loader = importlib.machinery.SourceFileLoader("one_import_pytorch_quant_spec", DRIVER)
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        loader.exec_module(module)
        _DRV.append(module)
    return _DRV[0]


def _dests(parser):
    return set(a.dest for a in parser._actions if a.dest != "help")


def test_api_options_are_the_spec():
    assert api.ConvertOptions is options.ConvertOptions
    assert tuple(api.ConvertOptions.FIELDS) == options.CONVERT_NAMES
    assert api.ConvertOptions.FIELDS == {"input_shapes": None, "input_type": "float32", "output_type": "float32",
                                         "io_layout": "nchw", "profile": "luci", "fc_as_conv": False,
                                         "strict": False, "softmax_scale": None}


def test_driver_flags_and_cfg_keys_come_from_the_spec():
    parser = driver().build_parser()
    assert _dests(parser) == set(o.name for o in options.OPTIONS)
    spec = options.cfg_spec()
    assert set(spec) == set(o.name for o in options.OPTIONS if o.scope != options.CLI)
    assert set(spec) <= _dests(parser)
    # cli-only flags are not cfg keys
    assert not set(spec) & {"config", "section", "version", "optimization"}
    assert spec["input_type"] == options.DTYPES and spec["input_path"] == "str" and spec["strict"] == "bool"


def test_every_cfg_key_of_the_spec_is_accepted(tmp_path):
    values = {"bool": "False", "str": "x", "shapes": "1,3,8,8"}
    body = "".join("%s=%s\n" % (k, kind[0] if isinstance(kind, tuple) else values[kind])
                   for k, kind in options.cfg_spec().items() if k != "verify_only")
    cfg = tmp_path / "m.cfg"
    cfg.write_text("[one-import-pytorch-quant]\n" + body)
    args = driver().parse_arguments(["-C", str(cfg)])
    assert args.input_shapes == [[1, 3, 8, 8]] and args.input_type == "float32" and args.strict is False
    opts = driver()._convert_options(args)
    assert opts.profile == "luci" and opts.softmax_scale == "1/256"


def test_report_flags_come_from_the_spec():
    from onelib.pytorch_quant.report import cli
    dests = _dests(cli.build_parser())
    assert set(options.CONVERT_NAMES) <= dests
    args = cli.build_parser().parse_args(["m.pt", "--fc_as_conv", "--input_shapes", "1,3,8,8",
                                          "--input_type", "uint8", "--strict"])
    opts = cli.options_from_args(args)
    assert (opts.profile, opts.fc_as_conv, opts.input_shapes, opts.input_type, opts.strict) == \
        ("onert", True, [[1, 3, 8, 8]], "uint8", True)
    with pytest.raises(SystemExit):   # the spec's choices apply to the report's flags too
        cli.build_parser().parse_args(["m.pt", "--input_type", "int8"])


@pytest.mark.parametrize("kw, needle", [
    ({"softmax_scale": "1/7"}, "softmax_scale must be one of 1/256, 1/255, not '1/7'"),
    ({"profile": "npu"}, "profile must be one of luci, onert, not 'npu'"),
    ({"input_type": "int8"}, "input_type must be one of float32, uint8, int16, not 'int8'"),
    ({"output_type": None}, "output_type must be one of"),
    ({"io_layout": "NHWC"}, "io_layout must be one of nchw, nhwc"),
    ({"fc_as_conv": "yes"}, "fc_as_conv must be True or False, not 'yes'"),
    ({"strict": 1}, "strict must be True or False, not 1"),
    ({"input_shapes": "1,3,8,8"}, "input_shapes must be a list of shapes"),
    ({"input_shapes": [[1, 3.0, 8, 8]]}, "input_shapes must be a list of shapes"),
    ({"input_shapes": [[1, 0, 8, 8]]}, "input_shapes: shape 1,0,8,8 has a dimension that is not in 1..2147483647"),
    ({"fc_as_conv": True, "profile": "luci"}, "fc_as_conv is an alias of profile=onert"),
    ({"quantized_dtype": "uint8"}, "unknown option 'quantized_dtype'"),
])
def test_every_option_is_checked_when_built(kw, needle):
    """No model needed: a wrong value fails in ConvertOptions(...), not when (or if) the graph
    reaches the op that reads it (softmax_scale was once checked only when a softmax existed)."""
    with pytest.raises(ConversionError) as e:
        api.ConvertOptions(**kw)
    assert needle in str(e.value)


def test_defaults_and_alias():
    assert api.ConvertOptions().softmax_scale == "1/255"
    assert api.ConvertOptions(profile="onert").softmax_scale == "1/256"
    o = api.ConvertOptions(fc_as_conv=True)
    assert o.profile == "onert" and o.fc_as_conv is True
    o = api.ConvertOptions(input_shapes=((1, 3, 8, 8),), strict=True, softmax_scale="1/256")
    assert o.input_shapes == ((1, 3, 8, 8),) and o.strict is True and o.softmax_scale == "1/256"
    assert repr(api.ConvertOptions()).startswith("ConvertOptions(input_shapes=None, input_type='float32'")


def test_spec_module_is_standard_library_only_and_python_3_8():
    """The driver reads the spec before it knows whether torch is there (--help, cfg errors)."""
    import ast
    path = os.path.join(REPO, "onelib", "pytorch_quant", "options.py")
    with open(path) as f:
        tree = ast.parse(f.read(), path, feature_version=(3, 8))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    assert names <= {"argparse", "numbers", ".cfgfile", ".errors"}, names


def test_readme_flag_table_names_every_option_and_no_other():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    start = text.index("| flag (= cfg key) | meaning |")
    table = text[start:text.index("\n\n", start)]
    import re
    named = set(re.findall(r"--([a-z_]+)", table))
    assert named <= set(o.name for o in options.OPTIONS), named - set(o.name for o in options.OPTIONS)
    for o in options.OPTIONS:   # by its long flag, or its short one (-T, -O)
        assert (o.short or o.flag) in table, o.name
