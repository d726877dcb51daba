"""Source ops (what frontends emit) and their lowering to circle.

Source-stage vocabulary: shapes are PyTorch's (NCHW); every op has exactly one output unless its
declaration says otherwise. An activation tensor carries ``qparams`` (per-tensor) when
quantized, ``None`` when the op runs in float. Constants (weights, bias) are ``Tensor`` with
``data``.

Each source op kind is declared once, with ``@op`` (declare.py) on its lowering function in the
module that lowers it; the declaration holds its inputs and attrs, shape rule, qparams rule,
float and grid facts, the PyTorch names each frontend reads into it and its README row.
``python -m onelib.pytorch_quant.ops.table --ir`` prints every kind's inputs and attrs.

Modules: declare.py (``@op``), ctx.py (``LowerCtx``, layout rule), quant.py (integer rules), the
op modules (conv, conv_extra, elementwise, activation, pool, pool_window, shape_ops, layout,
resize, pad), registry.py (collects the declarations), lower.py (``lower_graph``), table.py (the
README's op table). Imports run one way: declare/ctx/quant <- op modules <- registry <- lower, table.
"""
