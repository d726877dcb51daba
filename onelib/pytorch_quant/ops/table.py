"""The README's op table, generated from the op declarations (``registry.DECLS``).

    python -m onelib.pytorch_quant.ops.table              # print the table (Markdown)
    python -m onelib.pytorch_quant.ops.table --ir         # print the source IR table (inputs, attrs)
    python -m onelib.pytorch_quant.ops.table --update README.md   # rewrite it between the markers

tests/test_op_table.py fails when the README's table is not this one.
"""
import sys

from . import registry

BEGIN = "<!-- op table: generated from the @op declarations by `python -m onelib.pytorch_quant.ops.table " \
        "--update README.md`; do not edit by hand -->"
END = "<!-- end of op table -->"


def _shown(names, frontend):
    """PyTorch names as the table shows them: in-place twins (``relu_``) folded into their op,
    .pt2 overloads (``.default``, ``.Tensor``) left out."""
    out = []
    for n in names:
        if frontend == "pt2":
            n = n.rsplit(".", 1)[0] if n.count(".") >= 2 else n
        out.append(n)
    base = set(out)
    kept = []
    for n in out:
        if (n.endswith("_") and n[:-1] in base) or n in kept:
            continue
        kept.append(n)
    return ", ".join("`%s`" % n for n in kept)


def _cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def markdown():
    """The op table: one row per source op kind."""
    lines = ["| op | TorchScript reads | .pt2 reads | circle | conditions | onert runs it |",
             "|---|---|---|---|---|---|"]
    for kind, d in registry.DECLS.items():
        ts = _shown(d.reads["torchscript"], "torchscript") or "-"
        pt2 = _shown(d.reads["pt2"], "pt2") or "-"
        lines.append("| `%s` | %s | %s | %s | %s | %s |" % (kind, ts, pt2, _cell(d.circle), _cell(d.conditions),
                                                          _cell(d.onert)))
    return "\n".join(lines) + "\n"


def ir_table():
    """The source IR: each kind's inputs and attrs (shapes PyTorch's, NCHW; one output unless noted)."""
    lines = ["| kind | inputs | attrs | float ok | keeps the grid |", "|---|---|---|---|---|"]
    for kind, d in registry.DECLS.items():
        lines.append("| `%s` | %s | %s | %s | %s |" % (kind, _cell(d.inputs), _cell(d.attrs),
                                                     "yes" if d.float_ok else "", "yes" if d.same_grid else ""))
    return "\n".join(lines) + "\n"


def replace_in(text):
    """``text`` (the README) with the op table between the markers replaced by ``markdown()``."""
    head, sep, rest = text.partition(BEGIN)
    if not sep or END not in rest:
        raise ValueError("the op table markers are missing")
    return head + BEGIN + "\n" + markdown() + END + rest.split(END, 1)[1]


def main(argv):
    if argv[:1] == ["--update"] and len(argv) == 2:
        with open(argv[1]) as f:
            text = f.read()
        new = replace_in(text)
        if new != text:
            with open(argv[1], "w") as f:
                f.write(new)
        return 0
    sys.stdout.write(ir_table() if argv == ["--ir"] else markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
