"""Issue 10: the unsupported-op error grouped per kind, no misleading errors downstream of an
unsupported op, input types listed with the ops, FX TorchScript tensors named by full module path."""
import os

import pytest

from onelib.pytorch_quant import api
from onelib.pytorch_quant.errors import ConversionError, UnsupportedOpsError, format_unsupported


def test_grouped_form_exact():
    items = [("features.%d.2" % i, "aten::silu_") for i in range(7)] + \
            [("a.activation", "aten::silu"), ("b.activation", "aten::silu"), ("c.activation", "aten::silu")] + \
            [("", "aten::gelu")]
    e = UnsupportedOpsError("m.pt", items)
    assert str(e) == ("m.pt: 11 unsupported ops of 3 kinds: aten::silu_ x7 [features.0.2, features.1.2, "
                      "features.2.2, +4 more]; aten::silu x3 [a.activation, b.activation, c.activation]; "
                      "aten::gelu [<top>]")
    assert e.items == items


def test_grouped_form_single_and_same_kind():
    assert format_unsupported([("x", "aten::flip")]) == "1 unsupported op: aten::flip [x]"
    assert format_unsupported([("x", "aten::flip"), ("y", "aten::sin")]) == \
        "2 unsupported ops: aten::flip [x]; aten::sin [y]"
    # repeated paths are listed once
    assert format_unsupported([("", "k")] * 4) == "4 unsupported ops: k x4 [<top>, +3 more]"


def _flip_then_shapes(tmp_path, n_flips=1):
    """An eager-quantized model: conv, ``n_flips`` unsupported flips, then size-driven reshapes."""
    import torch
    import torch.nn as nn
    import qmodels

    class Odd(qmodels.QModel):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.head = nn.Conv2d(4, 4, 1)

        def body(self, x):
            y = self.conv(x)
            for _ in range(n_flips):
                y = torch.flip(y, [3])                          # not supported
            y = self.head(y)
            return y.reshape(y.size(0), y.size(1), -1).transpose(1, 2)

    q = qmodels.quantize_eager(Odd(), "x86", (1, 3, 8, 8))
    path = os.path.join(str(tmp_path), "odd.pt")
    qmodels.trace_and_save(q, (1, 3, 8, 8), path, engine="x86")
    return path


def test_no_misleading_error_downstream_of_an_unsupported_op(tmp_path):
    path = _flip_then_shapes(tmp_path)
    with pytest.raises(UnsupportedOpsError) as e:
        api.convert(path, api.ConvertOptions(input_shapes=[[1, 3, 8, 8]]))
    msg = str(e.value)
    assert [k for _, k in e.value.items] == ["aten::flip"], msg
    assert "--input_shapes" not in msg and msg.startswith(path + ": 1 unsupported op:"), msg


def test_many_repeats_grouped(tmp_path):
    path = _flip_then_shapes(tmp_path, n_flips=5)
    with pytest.raises(UnsupportedOpsError) as e:
        api.convert(path, api.ConvertOptions(input_shapes=[[1, 3, 8, 8]]))
    assert str(e.value) == path + ": 5 unsupported ops: aten::flip x5 [<top>, +4 more]"


def test_fx_torchscript_names_are_full_module_paths(monkeypatch):
    """FX TorchScript tensors of module-called ops carry the same full paths as the .pt2's
    (efficientnet with Hardswish for SiLU, so that both convert whatever SiLU's support is)."""
    import torch
    import transformer_models as T
    monkeypatch.setattr(T.nn, "SiLU", torch.nn.Hardswish)
    names = {}
    for recipe in ("fx", "xnnpack"):
        b = T.build("efficientnet", recipe)
        opts = api.ConvertOptions(input_shapes=[list(t.shape) for t in b.inputs]) \
            if b.kind == "torchscript" else api.ConvertOptions()
        c = api.convert(b.artifact, opts)
        names[recipe] = [(op.kind, op.outputs[0].name) for op in c.source_graph.ops
                         if op.kind in ("conv2d", "linear", "hardswish", "sigmoid", "adaptive_avg_pool2d")]
    assert len(names["fx"]) == 34 and names["fx"] == names["xnnpack"], names
    assert ("conv2d", "features.2.1.block.0.0") in names["fx"]   # two adjacent '0(Conv2d)' calls told apart
