#!/usr/bin/env python3
"""sha256 of the circle bytes of every model the tests and the full-size sweep build.

    venv/bin/python scripts/circle_hashes.py OUT.json [--models DIR] [--compare BASE.json]
                                             [--skip-build] [--only SUBSTR]

Step 1 builds each model in code (tests/qmodels.py, tests/archmodels.py, tests/pt2models.py,
tests/test_ops_extra.py, tests/test_fullsize_regressions.py and scripts/fullsize_sweep.py) and
saves it under ``--models`` (default: a folder in the system temp dir) unless it is there
already, so a later run converts the very same files. Step 2 converts every saved file with
several option sets and writes ``case/options -> sha256`` to OUT.json. With ``--compare`` it
prints every case whose bytes differ from BASE.json and exits 1 if any does.

Use it to prove a refactoring leaves the circles byte-identical: run it once on the unchanged
code, then after each step with ``--compare``.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), HERE]
warnings.filterwarnings("ignore")

# option sets every TorchScript file is converted with (input_shapes is added per model)
TS_OPTIONS = {
    "default": {},
    "fc_as_conv": {"fc_as_conv": True},
    "uint8_io_nhwc": {"input_type": "uint8", "output_type": "uint8", "io_layout": "nhwc"},
}
PT2_OPTIONS = {"default": {}, "fc_as_conv": {"fc_as_conv": True}}

FULLSIZE = [("resnet50", "ptq_x86"), ("resnet50", "ptq_qnnpack"), ("resnet50", "pt2e_xnnpack"),
            ("mobilenet_v2", "ptq_x86"), ("mobilenet_v2", "ptq_qnnpack"), ("mobilenet_v2", "fx_x86"),
            ("mobilenet_v3_large", "ptq_x86"), ("mobilenet_v3_large", "fx_x86"),
            ("shufflenet_v2_x1_0", "ptq_x86"), ("shufflenet_v2_x1_0", "fx_x86"),
            ("googlenet", "ptq_x86"), ("googlenet_tf_input", "ptq_x86"), ("inception_v3", "ptq_x86"),
            ("resnet18", "ptq_x86"), ("resnext50_32x4d", "ptq_x86"), ("deeplab_lite", "ptq_x86"),
            ("deeplab_lite", "fx_x86"), ("ssdlite", "ptq_x86"), ("mobilenet_v2", "pt2e_xnnpack")]


def _builders():
    """name -> (callable(path) that saves the model, input shape or None for .pt2)."""
    import torch
    import qmodels as Q
    import archmodels as A
    import pt2models as P

    out = {}

    def ts(name, make_q, shape, engine, scripted=False):
        def build(path):
            q = make_q()
            if scripted:
                with Q.engine_ctx(engine):
                    torch.jit.save(torch.jit.script(q), path)
            else:
                Q.trace_and_save(q, shape, path, engine=engine)
        out[name + ".pt"] = (build, shape)

    for name, (factory, shape) in sorted(Q.all_models().items()):
        for engine in Q.ENGINES:
            ts("q/%s/ptq_%s" % (name, engine), lambda f=factory, e=engine, s=shape: Q.quantize_eager(f(), e, s),
               shape, engine)
    for name, (factory, shape) in sorted(Q.MODELS.items()):
        for engine in ("x86", "fbgemm", "qnnpack"):
            ts("q/%s/qat_%s" % (name, engine),
               lambda f=factory, e=engine, s=shape: Q.quantize_eager(f(), e, s, qat=True), shape, engine)
        for engine in Q.ENGINES:
            ts("q/%s/fx_%s" % (name, engine), lambda f=factory, e=engine, s=shape: Q.quantize_fx(f(), e, s),
               shape, engine)
        ts("q/%s/scripted_x86" % name, lambda f=factory, s=shape: Q.quantize_eager(f(), "x86", s), shape, "x86",
           scripted=True)
    for arch, recipe, engine in A.CASES:
        cls = A.ARCHS[arch]

        def make(cls=cls, recipe=recipe, engine=engine):
            m = cls(seed=0)
            return (Q.quantize_fx if recipe == "fx" else Q.quantize_eager)(m, engine, cls.input_shape, seed=0)
        ts("arch/%s/%s_%s" % (arch, recipe, engine), make, cls.input_shape, engine)

    import test_ops_extra as X
    for case in X.CASES:
        if case.error:
            continue
        for engine in Q.ENGINES:
            ts("ops_extra/%s/%s" % (case.name, engine),
               lambda c=case, e=engine: c.recipe(c.model(), e, c.shape), case.shape, engine)

    import test_fullsize_regressions as R
    for cls, shape in ((R.TransformInput, (1, 3, 8, 8)), (R.Normalize, (1, 3, 8, 8)), (R.Bilinear, (1, 3, 6, 6))):
        for engine in Q.ENGINES:
            def make(cls=cls, shape=shape, engine=engine):
                m = cls()
                Q._init_params(m, 0)
                return Q.quantize_eager(m, engine, shape)
            ts("regress/%s/%s" % (cls.__name__, engine), make, shape, engine)

    def pt2(name, make_ep):
        def build(path):
            torch.export.save(make_ep(), path)
        out[name + ".pt2"] = (build, None)

    for name, (factory, shape) in sorted(R.PT2_MODELS.items()):
        pt2("regress/%s/pt2e_xnnpack" % name, lambda f=factory, s=shape: R._pt2e_xnnpack(f(), s).ep)
    for name in sorted(P.MODELS):
        pt2("pt2/%s/xnnpack" % name, lambda n=name: P.quantize(n, "xnnpack").ep)
    for name in ("conv", "linear", "add", "cat", "conv_hardswish"):
        if name in P.MODELS:
            for recipe in ("x86", "a16w8", "fx", "xnnpack_pt"):
                pt2("pt2/%s/%s" % (name, recipe), lambda n=name, r=recipe: P.quantize(n, r).ep)

    import fullsize_sweep as S
    for arch, recipe in FULLSIZE:
        factory, hw = S.ARCHS[arch]
        shape = (1, 3, hw, hw)

        def make(factory=factory, recipe=recipe, shape=shape):
            torch.manual_seed(0)
            model = S.init_params(factory(), 0)
            return S.quantize(model, recipe, shape, 3)
        if recipe.startswith("pt2e"):
            pt2("full/%s/%s" % (arch, recipe), lambda m=make: m()[0])
        else:
            ts("full/%s/%s" % (arch, recipe), lambda m=make: m()[0], shape,
               "qnnpack" if recipe.endswith("qnnpack") else "x86")
    return out


def build_all(folder, only):
    shapes = {}
    for key, (build, shape) in sorted(_builders().items()):
        if only and only not in key:
            continue
        path = os.path.join(folder, key.replace("/", "__"))
        shapes[key] = shape
        if os.path.exists(path):
            continue
        t0 = time.time()
        try:
            build(path)
            print("built %-60s %.1f s" % (key, time.time() - t0))
        except Exception as e:
            print("cannot build %s: %s: %s" % (key, type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
        sys.stdout.flush()
    with open(os.path.join(folder, "shapes.json"), "w") as f:
        json.dump(shapes, f, indent=0, sort_keys=True)


def hash_all(folder, only):
    from onelib.pytorch_quant import api
    with open(os.path.join(folder, "shapes.json")) as f:
        shapes = json.load(f)
    hashes, frozen = {}, []
    for key in sorted(shapes):
        if only and only not in key:
            continue
        path = os.path.join(folder, key.replace("/", "__"))
        if not os.path.exists(path):
            continue
        shape = shapes[key]
        option_sets = PT2_OPTIONS if key.endswith(".pt2") else TS_OPTIONS
        for oname, opts in sorted(option_sets.items()):
            kw = dict(opts)
            if shape is not None:
                kw["input_shapes"] = [list(shape)]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    conv = api.convert(path, api.ConvertOptions(**kw))
                data = conv.circle
                module = (conv.source_record.module if conv.source_record is not None else None)
                if module is not None and type(module).__name__ != "_InlinedModule" and oname == "default":
                    frozen.append(key)   # the TorchScript frontend froze the module (slow path)
                digest = hashlib.sha256(data).hexdigest()
            except Exception as e:
                digest = "error: %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            hashes["%s|%s" % (key, oname)] = digest
    if frozen:
        print("%d TorchScript models took the torch.jit.freeze path: %s" % (len(frozen), ", ".join(frozen)))
    return hashes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--models", default=os.path.join(tempfile.gettempdir(), "onepq_hash_models"))
    ap.add_argument("--compare", default="")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--only", default="", help="only cases whose name contains this")
    args = ap.parse_args()
    os.makedirs(args.models, exist_ok=True)
    if not args.skip_build:
        build_all(args.models, args.only)
    t0 = time.time()
    hashes = hash_all(args.models, args.only)
    with open(args.out, "w") as f:
        json.dump(hashes, f, indent=1, sort_keys=True)
    n_err = sum(1 for v in hashes.values() if v.startswith("error"))
    print("%d circles hashed (%d conversions refused) in %.0f s -> %s"
          % (len(hashes), n_err, time.time() - t0, args.out))
    if args.compare:
        with open(args.compare) as f:
            base = json.load(f)
        diff = [k for k in sorted(hashes) if k in base and base[k] != hashes[k]]
        missing = [k for k in sorted(base) if k not in hashes and (not args.only or args.only in k)]
        same = sum(1 for k in hashes if k in base and base[k] == hashes[k] and not hashes[k].startswith("error"))
        for k in diff:
            print("DIFFERS: %s: %s -> %s" % (k, base[k][:20], hashes[k][:60]))
        for k in missing:
            print("MISSING: %s" % k)
        print("%d byte-identical circles (+%d identical refusals), %d differ, %d missing"
              % (same, sum(1 for k in hashes if k in base and base[k] == hashes[k]) - same, len(diff), len(missing)))
        return 1 if diff or missing else 0
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
