"""Run the op parameter sweep (tests/sweep.py) and print, per op: the number of cases (case x
frontend), the max LSB from PyTorch on TICO and on onert, how many ran on each, and every
refusal and failure with its reason.

    venv/bin/python scripts/sweep_ops.py              # the whole grid (tens of minutes)
    venv/bin/python scripts/sweep_ops.py --sample     # the default test run's sample
    venv/bin/python scripts/sweep_ops.py --op conv2d --json sweep.json
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", action="store_true", help="only the default test run's fixed-seed sample")
    ap.add_argument("--op", action="append", help="only this op family (repeatable)")
    ap.add_argument("--frontend", action="append", help="x86, qnnpack or xnnpack (repeatable)")
    ap.add_argument("--json", help="write every case's result here")
    ap.add_argument("--chunk", type=int, default=200, help="cases per onert child process batch")
    args = ap.parse_args(argv)

    import sweep as S

    sel = S.default_sample() if args.sample else S.items()
    if args.op:
        sel = [it for it in sel if it[0].op in args.op]
    if args.frontend:
        sel = [it for it in sel if it[1] in args.frontend]
    t0 = time.time()
    res = {}
    with tempfile.TemporaryDirectory(prefix="sweep_") as tmp:
        for i in range(0, len(sel), args.chunk):
            res.update(S.run_cases(sel[i:i + args.chunk], tmp))
            print("... %d/%d cases, %.0f s" % (min(i + args.chunk, len(sel)), len(sel), time.time() - t0),
                  file=sys.stderr, flush=True)
    stats = collections.OrderedDict()
    problems, refusals, rows = [], [], []
    for case, fe in sel:
        r = res[(case.id, fe)]
        st = stats.setdefault(case.op, {"cases": 0, "frontends": set(), "tico": [0, 0], "onert": [0, 0],
                                        "refused": 0, "failed": 0})
        st["cases"] += 1
        st["frontends"].add(fe)
        row = {"op": case.op, "case": case.id, "frontend": fe}
        if "error" in r:
            st["failed"] += 1
            problems.append("%s/%s: %s" % (case.id, fe, str(r["error"]).splitlines()[0][:300]))
            row["error"] = str(r["error"])
        elif "refused" in r:
            st["refused"] += 1
            ok = case.refuse and r["refused"] and case.refuse in r["refused"]
            (refusals if ok else problems).append("%s/%s: %s" % (case.id, fe, r["refused"] or "converted, expected a refusal"))
            row["refused"] = r["refused"]
        else:
            for oracle in ("tico", "onert"):
                v = r["lsb"].get(oracle)
                if v is None:
                    continue
                if isinstance(v, Exception):
                    st["failed"] += 1
                    problems.append("%s/%s %s: %s" % (case.id, fe, oracle, str(v).splitlines()[0][:300]))
                    continue
                st[oracle][0] = max(st[oracle][0], v)
                st[oracle][1] += 1
                if v > S.LIMIT:
                    problems.append("%s/%s %s: %d LSB" % (case.id, fe, oracle, v))
            row.update(lsb={k: (v if isinstance(v, int) else str(v)) for k, v in r["lsb"].items()},
                       onert_gap=r.get("onert_gap"))
        rows.append(row)
    print("%-22s %6s  %-22s %12s %12s %8s %7s" % ("op", "cases", "frontends", "TICO max/n", "onert max/n",
                                                   "refused", "failed"))
    for op, st in stats.items():
        print("%-22s %6d  %-22s %7d/%-4d %7d/%-4d %8d %7d" % (
            op, st["cases"], ",".join(sorted(st["frontends"])), st["tico"][0], st["tico"][1],
            st["onert"][0], st["onert"][1], st["refused"], st["failed"]))
    print("total %d cases in %.0f s" % (len(sel), time.time() - t0))
    for title, lines in (("refused (as expected)", refusals), ("PROBLEMS", problems)):
        if lines:
            print("\n%s: %d" % (title, len(lines)))
            for line in lines:
                print("  " + line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
