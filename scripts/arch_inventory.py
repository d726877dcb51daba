#!/usr/bin/env python3
"""Inventory of tests/transformer_models.py (issue 10): for every model x recipe, whether PyTorch
can produce it, which op kinds the result holds, and what the converter says today.

Op forms (one letter each side of ``>``, the set seen over all instances of that kind):
  input side:  q = an activation read through dequantize, f = a float activation, c = a constant
               (parameter, buffer, lifted constant), i = an integer input, - = no tensor input
  output side: q = every user is a quantize, f = float users, - = no tensor users
so ``q>q`` is an op PyTorch left float between a dequantize and a quantize (the quantized form of
PT2E), ``f>f`` an op that runs on float values. Quantize/dequantize nodes themselves, getattr,
and TorchScript constants/list plumbing are not listed.

Usage: python scripts/arch_inventory.py [--models vit,bert] [--recipes xnnpack,fx] [--json out]
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

warnings.filterwarnings("ignore")

_QUANT = ("quantize_per_tensor", "quantize_per_channel")
_SKIP_TS = ("prim::Constant", "prim::ListConstruct", "prim::GetAttr", "prim::TupleConstruct",
            "prim::ListUnpack", "prim::TupleUnpack", "prim::NumToTensor", "aten::Int",
            "prim::device", "prim::dtype")


def _is_dq(name):
    return "dequantize" in name


def _is_q(name):
    return any(k in name for k in _QUANT) and not _is_dq(name)


def _forms_pt2(ep):
    """{aten target: Counter of 'in>out' forms} for an ExportedProgram."""
    consts = set()
    ints = set()
    sig = ep.graph_signature
    for spec in sig.input_specs:
        if spec.kind.name != "USER_INPUT":
            consts.add(spec.arg.name)
    out = collections.OrderedDict()
    for n in ep.graph.nodes:
        if n.op == "placeholder":
            v = n.meta.get("val")
            if v is not None and hasattr(v, "dtype") and not v.dtype.is_floating_point:
                ints.add(n.name)
            continue
        if n.op != "call_function":
            continue
        t = str(n.target)
        if _is_q(t) or _is_dq(t) or t.endswith("getitem"):
            continue
        ins = set()
        for a in n.all_input_nodes:
            at = str(a.target)
            if a.op == "placeholder":
                ins.add("c" if a.name in consts else ("i" if a.name in ints else "f"))
            elif _is_dq(at):
                src = a.args[0]
                ins.add("c" if getattr(src, "op", None) == "placeholder" and src.name in consts else "q")
            elif a.op == "get_attr":
                ins.add("c")
            else:
                ins.add("f")
        users = [u for u in n.users if u.op != "output"] + [u for u in n.users if u.op == "output"]
        if not users:
            o = "-"
        elif all(u.op == "call_function" and _is_q(str(u.target)) for u in users):
            o = "q"
        elif any(u.op == "call_function" and _is_q(str(u.target)) for u in users):
            o = "qf"
        else:
            o = "f"
        form = "%s>%s" % ("".join(sorted(ins)) or "-", o)
        out.setdefault(t.replace("aten.", "").replace(".default", ""), collections.Counter())[form] += 1
    return out


def _forms_ts(path_or_module):
    """{node kind: Counter of forms} for a traced TorchScript (inlined graph)."""
    import torch
    m = torch.jit.load(path_or_module) if isinstance(path_or_module, str) else path_or_module
    out = collections.OrderedDict()
    for n in m.inlined_graph.nodes():
        k = n.kind()
        if k in _SKIP_TS or k in ("aten::quantize_per_tensor", "aten::dequantize"):
            continue
        ins = set()
        for v in n.inputs():
            pk = v.node().kind()
            if pk == "aten::dequantize":
                ins.add("f")            # a float value made from a quantized one
            elif pk in ("prim::Constant", "prim::GetAttr", "prim::ListConstruct", "prim::NumToTensor",
                        "aten::size", "aten::Int"):
                continue
            elif pk == "prim::Param":
                ins.add("i" if "Long" in str(v.type()) else "f")
            elif pk.startswith("quantized::") or pk == "aten::quantize_per_tensor":
                ins.add("q")
            else:
                ins.add("?")            # quantized or float: decided by the producer's dtype
        outs = [u.user.kind() for o in n.outputs() for u in o.uses()]
        if not outs:
            o = "-"
        elif all(u == "aten::quantize_per_tensor" for u in outs):
            o = "q"
        elif all(u == "aten::dequantize" for u in outs):
            o = "dq"
        else:
            o = "."
        out.setdefault(k, collections.Counter())["%s>%s" % ("".join(sorted(ins)) or "-", o)] += 1
    return out


def _converter_says(built):
    from onelib.pytorch_quant import api
    from onelib.pytorch_quant.errors import ConversionError, UnsupportedOpsError
    opts = api.ConvertOptions()
    if built.kind == "torchscript":      # TorchScript keeps no shapes: give them as a user would
        opts.input_shapes = [list(t.shape) for t in built.inputs]
    try:
        conv = api.convert(built.artifact, opts)
    except UnsupportedOpsError as e:
        kinds = collections.Counter(k for _, k in e.items)
        first = collections.OrderedDict()
        for p, k in e.items:
            first.setdefault(k, p or "<top>")
        return "UNSUPPORTED %d: " % len(e.items) + ", ".join(
            "%s x%d [%s]" % (k, c, first[k]) for k, c in kinds.most_common())
    except ConversionError as e:
        return "ERROR " + str(e).splitlines()[0]
    except Exception as e:  # noqa: BLE001  a crash is a finding too
        return "CRASH %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    n = len(conv.graph.ops) if conv.graph is not None else 0
    return "ok (%d circle ops, %d bytes)" % (n, len(conv.circle))


def _fmt_forms(forms):
    return "; ".join("%s x%d %s" % (k, sum(c.values()), ",".join(sorted(c))) for k, c in forms.items())


def main(argv=None):
    import transformer_models as T
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(T.MODELS))
    ap.add_argument("--recipes", default=",".join(T.RECIPES))
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--traceback", action="store_true", help="print PyTorch's traceback on failure")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            for recipe in args.recipes.split(","):
                if recipe == "qat" and name not in T.QAT_MODELS:
                    continue
                row = {"model": name, "recipe": recipe}
                try:
                    built = T.build(name, recipe, folder)
                except Exception as e:  # noqa: BLE001  PyTorch refusing is the finding
                    if args.traceback:
                        traceback.print_exc()
                    msg = str(e).strip().splitlines()
                    row["pytorch"] = "FAILS %s: %s" % (type(e).__name__, msg[0][:160] if msg else "")
                    rows.append(row)
                    print("%-20s %-8s %s" % (name, recipe, row["pytorch"]), flush=True)
                    continue
                row["pytorch"] = "ok"
                forms = _forms_pt2(built.artifact) if built.kind == "pt2" else _forms_ts(built.path)
                row["ops"] = {k: dict(v) for k, v in forms.items()}
                row["converter"] = _converter_says(built)
                rows.append(row)
                print("%-20s %-8s ops: %s" % (name, recipe, _fmt_forms(forms)), flush=True)
                print("%-20s %-8s converter: %s" % ("", "", row["converter"]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
