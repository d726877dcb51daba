"""The op declarations (``@op`` in ops/) are the one home of op facts, and what is derived from
them matches the code: the README's op table is the generated one, every kind a frontend emits
is declared, every PyTorch name a declaration claims is read by that frontend (and every name a
frontend reads into an op is declared), every luci rule the README names is registered."""
import os
import re

import pytest

from onelib.pytorch_quant import verify
from onelib.pytorch_quant.ops import declare, registry, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# names the frontends read that become no source op: values, structure, identities, refusals
NOT_OPS = {
    "torchscript": {
        "aten::FloatImplicit", "aten::Int", "aten::_transformer_encoder_layer_fwd", "aten::IntImplicit", "aten::ScalarImplicit", "aten::__not__",
        "aten::alpha_dropout", "aten::clone", "aten::contiguous", "aten::detach", "aten::dim", "aten::dropout",
        "aten::dropout_", "aten::eq", "aten::feature_dropout", "aten::floor_divide", "aten::floordiv",
        "aten::ge", "aten::gt", "aten::le", "aten::len", "aten::lt", "aten::ne", "aten::quantized_gru",
        "aten::quantized_lstm", "aten::size", "prim::GetAttr", "prim::ListConstruct", "prim::ListUnpack",
        "prim::NumToTensor", "prim::TupleConstruct", "prim::TupleUnpack", "quantized::linear_dynamic",
        "quantized::linear_dynamic_fp16", "quantized::linear_relu_dynamic"},
    "pt2": {"quantized_decomposed.dequantize_per_channel.default",
            "quantized_decomposed.quantize_per_channel.default"},
}


def _readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def test_every_declared_kind_has_shape_rule_and_lowering():
    assert registry.DECLS
    for kind, d in registry.DECLS.items():
        assert d.kind == kind and callable(d.shape) and callable(d.lower), kind
        assert d.circle and d.onert, "%s: no README row" % kind
        assert any(d.reads[fe] for fe in declare.FRONTENDS), "%s: no frontend reads it" % kind
    assert set(registry.SHAPES) == set(registry.LOWERINGS) == set(registry.DECLS)
    assert registry.FLOAT_CAPABLE <= set(registry.LOWERINGS)
    assert registry.SAME_GRID <= set(registry.LOWERINGS)
    assert set(registry.QPARAMS) <= set(registry.LOWERINGS)


def test_readme_op_table_is_generated_from_the_declarations():
    readme = _readme()
    assert table.BEGIN in readme and table.END in readme
    assert table.replace_in(readme) == readme, \
        "README's op table differs from the declarations: python -m onelib.pytorch_quant.ops.table --update README.md"


def test_readme_table_drift_is_caught():
    readme = _readme()
    drifted = readme.replace("| `conv2d` |", "| `conv_2d` |", 1)
    assert drifted != readme and table.replace_in(drifted) != drifted


@pytest.mark.parametrize("frontend", declare.FRONTENDS)
def test_declared_reads_match_the_frontend_readers(frontend):
    if frontend == "torchscript":
        from onelib.pytorch_quant.frontend import torchscript as fe
    else:
        from onelib.pytorch_quant.frontend import pt2 as fe
    declared = set(registry.reads(frontend))
    # a dedicated reader, the frontend's generic reading of what a declaration lists in args, or
    # folding (a declaration's ``fold``: the .pt2 reader evaluates it on constants)
    read = set(fe.READERS) | set(registry.generic_reads(frontend)) | set(registry.folds(frontend))
    assert declared <= read, "declared but not read by %s: %s" % (frontend, sorted(declared - read))
    assert read - NOT_OPS[frontend] <= declared, \
        "read by %s but declared by no op: %s" % (frontend, sorted(read - NOT_OPS[frontend] - declared))


def test_generic_reads_contract(monkeypatch):
    for fe in declare.FRONTENDS:
        assert isinstance(registry.generic_reads(fe), dict)
    # a kind no op declares (aten::abs is a real one now): read generically by .pt2 only
    fake = declare.OpDecl("fake_sign", declare.same_shape, None, lambda ctx, op: None, True, True,
                          {"torchscript": ("aten::sign",), "pt2": ("aten.sign.default",)}, {"pt2": ("self",)},
                          "x", "-", "SIGN", "", "yes", 0)
    monkeypatch.setattr(registry, "DECLS", dict(registry.DECLS, fake_sign=fake))
    assert registry.generic_reads("pt2")["aten.sign.default"] == ("fake_sign", ("self",))
    assert "aten::sign" not in registry.generic_reads("torchscript")


def test_frontends_emit_only_registered_kinds():
    emitted = set()
    folder = os.path.join(ROOT, "onelib", "pytorch_quant", "frontend")
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
        with open(os.path.join(folder, name)) as f:
            text = f.read()
        emitted.update(re.findall(r'(?:emit|Op)\("([a-z_0-9]+)"', text))
    assert emitted and emitted <= set(registry.LOWERINGS), emitted - set(registry.LOWERINGS)


def test_readme_lists_every_verifier_rule():
    listed = re.search(r"one function per rule: (.*?)\) names", _readme(), re.S).group(1)
    assert set(re.findall(r"`([a-z0-9_]+)`", listed)) == set(verify.RULES)
