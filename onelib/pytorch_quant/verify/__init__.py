"""luci's rules for a pre-quantized U8 (or S16) circle model, as code.

ONE has no command that runs luci's `QuantizedModelVerifier` on a model that is already quantized
(it only runs at the end of circle-quantizer's own PTQ), so the converter checks its output here.
Each rule is one small function named after the rule and registered with `@rule(name, severity)`;
grep a rule's name to find it. Every finding names the rule, the operator and the tensor, so a
user can find the tensor in Netron.

Rules that describe an onert defect rather than a luci rule are named `onert_*`; with
`target="luci"` the ones that are only onert hazards are skipped.

Works on the bytes of a circle file; numpy and circle_schema are imported lazily and torch never.

    findings = verify_circle(open("m.circle", "rb").read())
    print(format_report(findings))
    if errors(findings): ...
"""

import argparse
import sys

from .model import (
    ERROR, WARNING, TARGETS, Finding, RULES, Rule, rule, issue, Model, dtype_name)
# the rule modules register their rules in this order (the order of the findings)
from . import rules_dtype, rules_qparams, rules_container, rules_onert
from .rules_qparams import weight_granularity

# each rule is also `verify.<its name>`, as when the rules lived in one module
globals().update((name, r.check) for name, r in RULES.items())

__all__ = ["ERROR", "WARNING", "TARGETS", "Finding", "RULES", "Rule", "rule", "issue", "Model", "dtype_name",
           "rules_dtype", "rules_qparams", "rules_container", "rules_onert", "weight_granularity",
           "verify_circle", "granularity_of", "verify_file", "errors", "warnings", "format_report", "main"]


# --------------------------------------------------------------------------------------------
# entry points

def verify_circle(buf, *, target="onert"):
    """Run every rule on the circle bytes `buf`; returns a list of Finding (errors and warnings).
    target "onert" (default) adds the onert hazards; "luci" checks luci's rules only."""
    if target not in TARGETS:
        raise ValueError("target must be one of %s, not %r" % (", ".join(TARGETS), target))
    buf = bytes(buf)
    try:
        m = Model(buf)
    except Exception as e:  # a flatbuffer that does not parse: nothing else can be checked
        return [Finding("graph_io", ERROR, "", "", "cannot read the circle model (file identifier %r): "
                        "%s: %s" % (buf[4:8], type(e).__name__, e))]
    findings = []
    for r in RULES.values():
        if (r.onert_only and target != "onert") or (r.luci_only and target != "luci"):
            continue
        try:
            for it in r.check(m):
                findings.append(Finding(
                    r.name, it.severity or r.severity,
                    it.op.label if it.op is not None else "",
                    it.tensor.name if it.tensor is not None else "",
                    it.message))
        except Exception as e:  # a model malformed in a way no rule foresaw: report, keep going
            findings.append(Finding(r.name, ERROR, "", "", "the check itself failed on this model "
                                    "(malformed?): %s: %s" % (type(e).__name__, e)))
    return findings


def granularity_of(buf):
    """'layer', 'channel', 'mixed' or None for circle bytes (see ``weight_granularity``)."""
    try:
        return weight_granularity(Model(bytes(buf)))
    except Exception:
        return None


def verify_file(path, *, target="onert"):
    with open(path, "rb") as f:
        return verify_circle(f.read(), target=target)


def errors(findings):
    return [f for f in findings if f.severity == ERROR]


def warnings(findings):
    return [f for f in findings if f.severity == WARNING]


def format_report(findings):
    """One finding per line, errors first, then a summary line."""
    ordered = errors(findings) + warnings(findings)
    lines = [str(f) for f in ordered]
    lines.append("%d error(s), %d warning(s)" % (len(errors(findings)), len(warnings(findings))))
    return "\n".join(lines)


def main(argv=None):
    """`python -m onelib.pytorch_quant.verify [--target onert|luci] FILE.circle`: prints the report;
    returns 1 on errors."""
    p = argparse.ArgumentParser(prog="one-import-pytorch-quant --verify_only",
                                description="Check a quantized circle model against luci's rules.")
    p.add_argument("model", help="the .circle file")
    p.add_argument("--target", choices=TARGETS, default="onert",
                   help="'onert' also reports onert's known defects (default); 'luci' only luci's rules")
    args = p.parse_args(argv)
    try:
        findings = verify_file(args.model, target=args.target)
    except OSError as e:
        print("verify: %s" % e, file=sys.stderr)
        return 1
    print(format_report(findings))
    return 1 if errors(findings) else 0


if __name__ == "__main__":
    sys.exit(main())
