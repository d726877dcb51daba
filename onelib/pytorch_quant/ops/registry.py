"""The op registry: every source op kind's declaration (``@op`` in ops/declare.py), collected from
the op modules, and the tables derived from them.

Adding an op touches one place: one ``@op("kind", shape=..., reads=..., circle=...)`` on its
lowering function in the op module that lowers it (a new module also goes into ``MODULES``), plus
its test row. The README's op table is generated from the declarations (``python -m
onelib.pytorch_quant.ops.table``; tests/test_op_table.py fails when they drift).
``grep -rn '"conv2d"' onelib/`` finds everything about conv2d.

Derived tables (read-only; callers must not change them):

* ``DECLS``: kind -> OpDecl, in README order
* ``SHAPES``, ``LOWERINGS``, ``QPARAMS``: kind -> shape rule / lowering / qparams rule
* ``FLOAT_CAPABLE``: kinds whose lowering also handles float tensors
* ``SAME_GRID``: kinds whose output is on their input's grid (circle's kernels and PyTorch's)
* ``FOLDS``: kind -> fold function (``@op(fold=...)``: the op evaluated on constants)

Generic reading contract (``generic_reads(frontend)``): a kind declared with
``args={frontend: (name, ...)}`` is read without a reader of its own. The table maps each PyTorch
name that frontend reads into the kind (its ``reads``) to ``(kind, argument names)``; the frontend
(given the table by api.py) turns such a node into one IR op of that kind: its tensor arguments,
in the declared order, become the op's inputs, its constant arguments become ``attrs`` under the
declared names; one output, whose qparams the frontend reads as for any op. Frontends import
nothing from ``ops/``: api.py hands them this table.

Import graph (acyclic): declare.py, ctx.py, quant.py <- op modules <- registry.py <- lower.py,
table.py; no op module imports registry.py or lower.py.
"""
from . import (activation, attention, cast, constants, conv, conv_extra, elementwise, embedding, layout, norm, pad,
               pool, resize, shape_ops, tensor_ops)
from .declare import FRONTENDS, DECLARED

# the op modules, in the README's order (each declares its kinds with @op)
MODULES = (elementwise, conv, conv_extra, activation, pool, shape_ops, layout, resize, pad, tensor_ops, constants,
           embedding, cast, norm, attention)


def _collect():
    order = dict((m.__name__, i) for i, m in enumerate(MODULES))
    decls = {}
    for d in sorted(DECLARED, key=lambda d: (order.get(d.module, len(order)), d.lower.__code__.co_firstlineno,
                                             -d.seq)):
        assert d.module in order, "%s is declared in %s, which is not in registry.MODULES" % (d.kind, d.module)
        assert d.kind not in decls, "two declarations of %s" % d.kind
        decls[d.kind] = d
    return decls


DECLS = _collect()
SHAPES = dict((k, d.shape) for k, d in DECLS.items())
LOWERINGS = dict((k, d.lower) for k, d in DECLS.items())
QPARAMS = dict((k, d.qparams) for k, d in DECLS.items() if d.qparams is not None)
FLOAT_CAPABLE = frozenset(k for k, d in DECLS.items() if d.float_ok)
SAME_GRID = frozenset(k for k, d in DECLS.items() if d.same_grid)
FOLDS = dict((k, d.fold) for k, d in DECLS.items() if d.fold is not None)


def reads(frontend):
    """{PyTorch name: kind} for every name ``frontend`` reads into a declared kind."""
    assert frontend in FRONTENDS, frontend
    out = {}
    for k, d in DECLS.items():
        for name in d.reads[frontend]:
            out.setdefault(name, []).append(k)
    return out


def generic_reads(frontend):
    """{PyTorch name: (kind, argument names)} for the kinds ``frontend`` reads generically (see
    the module docstring); empty while no kind is declared with ``args``."""
    assert frontend in FRONTENDS, frontend
    out = {}
    for k, d in DECLS.items():
        if frontend in d.args:
            for name in d.reads[frontend]:
                assert name not in out, "%s is read generically as both %s and %s" % (name, out[name][0], k)
                out[name] = (k, tuple(d.args[frontend]))
    return out


def folds(frontend):
    """{PyTorch name: (kind, tensor arguments the fold reads or None for all)} for every name
    ``frontend`` reads into a kind that declares ``fold`` (passes/fold.py evaluates them). The
    .pt2 reader folds any such name; the TorchScript reader (whose size arithmetic and frozen
    constants are already values) folds the kinds it reads generically (``args``)."""
    assert frontend in FRONTENDS, frontend
    out = {}
    for k, d in DECLS.items():
        if d.fold is not None and (frontend == "pt2" or frontend in d.args):
            for name in d.reads[frontend]:
                assert name not in out, "%s is folded as both %s and %s" % (name, out[name][0], k)
                out[name] = (k, d.fold_args)
    return out
