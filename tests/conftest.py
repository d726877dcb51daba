"""Make the repo root (for ``onelib.pytorch_quant``) and tests/ (for the oracles) importable."""
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (ROOT, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

# torch.ao.quantization and torch.jit print deprecation warnings on every use; they say nothing
# about the converter.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def pytest_terminal_summary(terminalreporter):
    """With -v (or -s), print the LSB numbers the numeric tests measured, for the README and the
    closing note. Printing only: the assertions live in the tests."""
    if terminalreporter.config.getoption("verbose") < 1 and terminalreporter.config.getoption("capture") != "no":
        return
    for mod_name, attr in (("test_convert_torchscript", "RESULTS"), ("test_ops_extra", "MEASURED"),
                           ("test_unary_exhaustive", "MEASURED")):
        mod = sys.modules.get(mod_name)
        table = getattr(mod, attr, None) if mod is not None else None
        if table:
            terminalreporter.write_sep("-", "measured LSB (%s)" % mod_name)
            for key in sorted(table):
                terminalreporter.write_line("LSB %s %s" % (" ".join(str(k) for k in key), table[key]))
    pt2 = sys.modules.get("test_pt2")
    if pt2 is not None and getattr(pt2, "RESULTS", None):
        terminalreporter.write_sep("-", "measured LSB (test_pt2): model recipe oracle max-LSB max|dy|")
        for (name, recipe, oracle), (worst, diff) in sorted(pt2.RESULTS.items()):
            terminalreporter.write_line("%-18s %-11s %-7s %6d  %.3g" % (name, recipe, oracle, worst, diff))
    arch = sys.modules.get("test_architectures")
    if arch is not None and getattr(arch, "RESULTS", None):
        terminalreporter.write_sep("-", "architectures")
        terminalreporter.write_line(arch.A.markdown_table(arch.RESULTS))
