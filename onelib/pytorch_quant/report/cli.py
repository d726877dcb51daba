"""``python -m onelib.pytorch_quant.report``: the fidelity report from the command line.

The conversion flags (``--profile``, ``--input_shapes``, ...) and ``-V`` are the driver's, made
from the one option spec (``options.py``); the rest are the report's own."""
import argparse
import sys

from .. import options
from ..errors import ConversionError
from .common import RUNTIMES
from .measure import fidelity
from .render import CHART_SKIPPED


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m onelib.pytorch_quant.report",
        description="Layer-by-layer fidelity of a PyTorch-quantized model converted to circle: each "
                    "layer's error in LSB, fed PyTorch's own inputs (per-op) and through the graph "
                    "(accumulated), on onert or TICO's reference runtime.")
    p.add_argument("model", help="TorchScript file of a quantized model, or a PT2E .pt2 (torch.export.save)")
    p.add_argument("--input", action="append", default=None, metavar="X.npy",
                   help="model input in PyTorch's layout (repeat for several inputs); default: random "
                        "values on the input quantizer's grid")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="auto: onert where it runs and is known right, TICO elsewhere; "
                        "luci-interpreter: ONE's circle-interpreter from ONE_BIN_DIR")
    p.add_argument("--engine", default=None, help="PyTorch quantized engine to run a TorchScript model "
                                                  "under (x86, qnnpack, ...; default: torch's current one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument("--json", default=None, metavar="OUT.json", help="write the report as JSON")
    p.add_argument("--plot", default=None, metavar="OUT.png",
                   help="write a PNG bar chart of LSB per layer (needs matplotlib)")
    options.add_arguments(p, ("verbose",))
    options.add_arguments(p.add_argument_group("conversion (as the driver's)"), options.CONVERT_NAMES)
    return p


def options_from_args(args):
    """The ConvertOptions of the conversion flags given (checked as the driver's are)."""
    from .. import cfgfile
    kw = options.convert_kwargs(args)
    if isinstance(kw.get("input_shapes"), str):
        kw["input_shapes"] = cfgfile.parse_shapes(kw["input_shapes"])
    return options.ConvertOptions(**kw)


def main(argv=None):
    """Command line entry; returns the exit code (0 ok, 1 failure). Reusable by the driver."""
    args = build_parser().parse_args(argv)
    say = (lambda m: sys.stderr.write("fidelity: %s\n" % m)) if args.verbose else None
    try:
        opts = options_from_args(args)
        rep = fidelity(args.model, opts, x=args.input, runtime=args.runtime, seed=args.seed,
                       engine=args.engine, progress=say)
        print(rep.table())
        if args.json:
            rep.to_json(args.json)
        if args.plot and not rep.plot(args.plot):
            sys.stderr.write("one-import-pytorch-quant: note: %s\n" % CHART_SKIPPED)
    except (ConversionError, ValueError, OSError) as e:
        if args.verbose:
            import traceback
            traceback.print_exc()
        sys.stderr.write("one-import-pytorch-quant: %s: %s\n" % (type(e).__name__.lstrip("_"), e))
        return 1
    return 0
