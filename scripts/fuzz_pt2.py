"""Fuzz the .pt2 reader: mutate valid archives and count what escapes as anything but a
ConversionError, and what hangs.

    venv/bin/python scripts/fuzz_pt2.py --iterations 10000 --seed 1          # the long run
    venv/bin/python scripts/fuzz_pt2.py --iterations 200 --seed 0            # what CI runs

Seed archives are built from the test models (tests/pt2models.py) in a child process (torch is
needed only there), or read from ``--seeds DIR``. Each case runs ``api.convert`` and, when that
succeeds, the built-in verifier, in this process (which never imports torch), under a SIGALRM
timeout and an address-space limit. Mutations: bytes of the zip (flips, truncation, insertion),
the zip directory (encryption flag, compression, duplicated members), the graph JSON (an op's
output renamed onto its input or another value, nodes dropped, duplicated or moved, values of
the wrong type, huge or negative numbers, deep nesting, unknown targets, identity self-loops) and
the weights config (sizes, strides, offsets, dtypes, member names). Failing cases are written to
``--save DIR`` for replay (``--replay FILE``).
"""
import argparse
import copy
import io
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SEED_MODELS = (("conv", "xnnpack"), ("conv_pool_linear", "x86"), ("add", "xnnpack_pt"),
               ("slice_features", "xnnpack"), ("cat", "a16w8"))


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang()


# ------------------------------------------------------------------------------ seeds
def make_seeds(folder):
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import warnings
    warnings.simplefilter("ignore")
    import pt2models
    for name, recipe in SEED_MODELS:
        pt2models.quantize(name, recipe).save(os.path.join(folder, "%s_%s.pt2" % (name, recipe)))


def load_seeds(folder):
    out = []
    for n in sorted(os.listdir(folder)):
        if n.endswith(".pt2"):
            with open(os.path.join(folder, n), "rb") as f:
                out.append((n, f.read()))
    return out


# -------------------------------------------------------------------------- archives
def members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def pack(items, deflate=()):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, d in items:
            z.writestr(n, d, compress_type=zipfile.ZIP_DEFLATED if n in deflate else zipfile.ZIP_STORED)
    return buf.getvalue()


def _model_index(items):
    for i, (n, _) in enumerate(items):
        if "/models/" in n and n.endswith(".json"):
            return i
    return None


def _config_index(items):
    for i, (n, _) in enumerate(items):
        if n.endswith("_weights_config.json"):
            return i
    return None


# ------------------------------------------------------------------------- mutations
def _leaves(obj, path=(), out=None, limit=20000):
    """(path, value) of every leaf and container, iteratively."""
    out = [] if out is None else out
    stack = [(path, obj)]
    while stack and len(out) < limit:
        p, v = stack.pop()
        out.append((p, v))
        if isinstance(v, dict):
            stack.extend((p + (k,), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((p + (i,), x) for i, x in enumerate(v))
    return out


def _set_path(obj, path, value):
    if not path:
        return value
    d = obj
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    return obj


WEIRD = [None, True, False, 0, -1, -8, 1, 2 ** 31, 2 ** 63, 10 ** 30, -10 ** 30, 1.5, float("nan"),
         float("inf"), "", "x", "as_tensor", [], {}, [1, 2], {"as_int": 3}, {"name": 5},
         {"as_tensor": {"name": "x"}}, {"as_int": -1}, {"as_expr": {}}, [[[]]], "\udcff"[:0] + "\u0000"]


def _weird(rng):
    v = rng.choice(WEIRD)
    return copy.deepcopy(v)


def _names(doc):
    names = []
    try:
        for n in doc["graph_module"]["graph"]["nodes"]:
            for o in n.get("outputs", []):
                if "as_tensor" in o:
                    names.append(o["as_tensor"]["name"])
        names += list(doc["graph_module"]["graph"].get("tensor_values", {}))
    except Exception:
        pass
    return names or ["x"]


IDENTITIES = ["aten.clone.default", "aten.alias.default", "aten.detach.default", "aten.dropout.default",
              "aten.contiguous.default", "aten.hardtanh.default", "aten.relu.default"]
TARGETS = IDENTITIES + ["aten.conv2d.default", "aten.linear.default", "aten.add.Tensor", "aten.cat.default",
                        "aten.max_pool2d.default", "aten.view.default", "aten.permute.default",
                        "aten.slice.Tensor", "aten.select.int", "aten.split.Tensor", "aten.mean.dim",
                        "quantized_decomposed.quantize_per_tensor.default",
                        "quantized_decomposed.dequantize_per_tensor.default",
                        "quantized_decomposed.dequantize_per_channel.default", "aten.nope.default"]


def mutate_graph(doc, rng):
    nodes = doc.get("graph_module", {}).get("graph", {}).get("nodes", [])
    names = _names(doc)
    kind = rng.randrange(11)
    if kind == 0 and nodes:          # an op's output renamed onto its input (the loop of issue 13)
        n = rng.choice(nodes)
        ins = [a["arg"]["as_tensor"]["name"] for a in n.get("inputs", [])
               if isinstance(a.get("arg"), dict) and "as_tensor" in a["arg"]]
        if ins and n.get("outputs"):
            n["outputs"][0] = {"as_tensor": {"name": rng.choice(ins)}}
    elif kind == 1 and nodes:        # an identity op onto its own input
        name = rng.choice(names)
        nodes.insert(rng.randrange(len(nodes) + 1),
                     {"target": "torch.ops." + rng.choice(IDENTITIES),
                      "inputs": [{"name": "self", "arg": {"as_tensor": {"name": name}}}],
                      "outputs": [{"as_tensor": {"name": name}}], "metadata": {}})
    elif kind == 2 and nodes:        # drop, duplicate or move nodes
        i = rng.randrange(len(nodes))
        op = rng.randrange(3)
        if op == 0:
            del nodes[i]
        elif op == 1:
            nodes.insert(rng.randrange(len(nodes) + 1), copy.deepcopy(nodes[i]))
        else:
            nodes.insert(rng.randrange(len(nodes) + 1), nodes.pop(i))
    elif kind == 3 and nodes:        # another target
        rng.choice(nodes)["target"] = "torch.ops." + rng.choice(TARGETS)
    elif kind == 4 and nodes:        # a reference to another value
        n = rng.choice(nodes)
        if n.get("inputs"):
            rng.choice(n["inputs"])["arg"] = {"as_tensor": {"name": rng.choice(names + ["nowhere"])}}
    elif kind == 5:                  # deep nesting somewhere
        leaves = _leaves(doc)
        path, _ = rng.choice(leaves)
        depth = rng.choice([50, 500, 5000, 100000])
        deep = []
        for _ in range(depth):
            deep = [deep]
        doc = _set_path(doc, path, deep)
    elif kind == 6:                  # sizes / strides / dtype of a tensor value
        tv = doc.get("graph_module", {}).get("graph", {}).get("tensor_values", {})
        if tv:
            meta = tv[rng.choice(sorted(tv))]
            key = rng.choice(["sizes", "strides", "dtype", "storage_offset"])
            if key in ("sizes", "strides") and isinstance(meta.get(key), list) and meta[key]:
                meta[key][rng.randrange(len(meta[key]))] = {"as_int": rng.choice([0, -8, 10 ** 6, 10 ** 12, 2 ** 40])}
            else:
                meta[key] = _weird(rng)
    else:                            # any value of the wrong type
        for _ in range(rng.randint(1, 3)):
            leaves = _leaves(doc)
            path, _ = rng.choice(leaves)
            doc = _set_path(doc, path, _weird(rng))
    return doc


def mutate_config(doc, rng):
    cfg = doc.get("config", {}) if isinstance(doc, dict) else {}
    if not cfg or not isinstance(cfg, dict):
        return _weird(rng)
    meta = cfg[rng.choice(sorted(cfg))]
    if not isinstance(meta, dict):
        return doc
    kind = rng.randrange(5)
    tm = meta.get("tensor_meta") if isinstance(meta.get("tensor_meta"), dict) else {}
    if kind == 0 and isinstance(tm.get("sizes"), list):
        tm["sizes"] = [{"as_int": rng.choice([3, 1000, 10 ** 6, 3 * 10 ** 9, 0, -1])} for _ in range(rng.randint(0, 5))]
        tm["strides"] = [{"as_int": rng.choice([0, 1, 7, -1, 10 ** 9])} for _ in tm["sizes"]]
    elif kind == 1:
        tm["storage_offset"] = {"as_int": rng.choice([-1, 1, 10 ** 6, 10 ** 18])}
    elif kind == 2:
        tm["dtype"] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 99, "x"])
    elif kind == 3:
        meta["path_name"] = rng.choice(["nothere", "", "..", "../x", "a/b", 5, None])
    else:
        for path, _ in rng.sample(_leaves(doc), 1):
            doc = _set_path(doc, path, _weird(rng))
    return doc


def mutate_bytes(data, rng):
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        del b[rng.randrange(len(b)):]
    elif kind == 2:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:   # a byte of the central directory or an end record
        i = bytes(b).rfind(b"PK\x01\x02")
        j = i + rng.randrange(46) if i >= 0 else rng.randrange(len(b))
        b[j] = rng.randrange(256)
    return bytes(b)


def mutate(data, rng):
    items = members(data)
    kind = rng.randrange(10)
    deflate = ()
    if kind <= 4:
        i = _model_index(items)
        doc = json.loads(items[i][1])
        for _ in range(rng.randint(1, 2)):
            doc = mutate_graph(doc, rng)
        try:
            items[i] = (items[i][0], json.dumps(doc).encode())
        except (ValueError, RecursionError):
            items[i] = (items[i][0], b"[" * 200000 + b"]" * 200000)
    elif kind <= 6:
        i = _config_index(items)
        if i is not None:
            doc = mutate_config(json.loads(items[i][1]), rng)
            items[i] = (items[i][0], json.dumps(doc).encode())
    elif kind == 7:   # a weight storage cut short or grown
        ws = [k for k, (n, _) in enumerate(items) if "/data/weights/weight_" in n]
        if ws:
            k = rng.choice(ws)
            d = items[k][1]
            items[k] = (items[k][0], d[:rng.randrange(len(d) + 1)] if rng.random() < 0.5 else d * 3)
    elif kind == 8:   # compression, a duplicate member, an encryption flag
        op = rng.randrange(3)
        if op == 0:
            deflate = set(n for n, _ in items)
        elif op == 1:
            items.append(rng.choice(items))
        else:
            data = pack(items)
            b = bytearray(data)
            i = data.rfind(b"PK\x01\x02")
            if i >= 0:
                b[i + 8] |= 1
            return bytes(b)
    else:
        return mutate_bytes(pack(items), rng)
    try:
        return pack(items, deflate)
    except Exception:
        return pack(members(data))


# ------------------------------------------------------------------------------ run
def run_case(path, timeout):
    """'ok' | 'error' (ConversionError) | ('uncaught', text) | ('hang', text)."""
    from onelib.pytorch_quant import api, verify
    from onelib.pytorch_quant.errors import ConversionError
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        conv = api.convert(path)
        verify.verify_circle(conv.circle)
        return "ok"
    except ConversionError as e:
        if "\n" in str(e):
            return ("uncaught", "multi-line message: %r" % str(e)[:300])
        return "error"
    except Hang:
        return ("hang", traceback.format_exc(limit=-3))
    except Exception as e:
        return ("uncaught", "%s: %s\n%s" % (type(e).__name__, str(e)[:300], traceback.format_exc(limit=-4)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def fuzz(seeds, iterations, seed, timeout, save, verbose=False):
    rng = random.Random(seed)
    counts = {"ok": 0, "error": 0, "uncaught": 0, "hang": 0}
    kinds = {}
    work = tempfile.mkdtemp(prefix="fuzz_pt2_")
    start = time.time()
    try:
        for it in range(iterations):
            name, data = seeds[rng.randrange(len(seeds))]
            case_rng = random.Random(rng.getrandbits(64))
            try:
                mutated = mutate(data, case_rng)
                for _ in range(case_rng.randrange(2)):
                    mutated = mutate(mutated, case_rng) if zipfile.is_zipfile(io.BytesIO(mutated)) else mutated
            except Exception:
                mutated = mutate_bytes(data, case_rng)
            path = os.path.join(work, "case.pt2")
            with open(path, "wb") as f:
                f.write(mutated)
            result = run_case(path, timeout)
            if isinstance(result, tuple):
                counts[result[0]] += 1
                key = result[1].splitlines()[0][:120]
                kinds[key] = kinds.get(key, 0) + 1
                if save:
                    os.makedirs(save, exist_ok=True)
                    out = os.path.join(save, "%s_%06d.pt2" % (result[0], it))
                    shutil.copy(path, out)
                    with open(out + ".txt", "w") as f:
                        f.write(result[1])
                if verbose:
                    print("iteration %d (%s): %s %s" % (it, name, result[0], result[1]), flush=True)
            else:
                counts[result] += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return counts, kinds, time.time() - start


def limit_memory(mb):
    try:
        resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
    except (ValueError, OSError):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--seeds", help="folder of .pt2 seed archives (default: built from the test models)")
    ap.add_argument("--save", help="folder to write failing cases to")
    ap.add_argument("--memory_mb", type=int, default=3000, help="address-space limit of the fuzzing process")
    ap.add_argument("--make_seeds", help=argparse.SUPPRESS)
    ap.add_argument("--replay", help="run one saved case and print the outcome")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    import warnings
    warnings.simplefilter("ignore")   # zipfile's duplicate-name notices are what some cases are about
    if args.make_seeds:
        make_seeds(args.make_seeds)
        return 0
    limit_memory(args.memory_mb)
    if args.replay:
        print(run_case(args.replay, args.timeout))
        return 0
    tmp = None
    folder = args.seeds
    if folder is None:
        tmp = tempfile.mkdtemp(prefix="fuzz_pt2_seeds_")
        folder = tmp
        subprocess.run([sys.executable, os.path.abspath(__file__), "--make_seeds", folder], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seeds = load_seeds(folder)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    counts, kinds, seconds = fuzz(seeds, args.iterations, args.seed, args.timeout, args.save, args.verbose)
    print("fuzz_pt2: %d iterations (seed %d) in %.0f s: %d converted, %d ConversionError, %d uncaught, %d hangs"
          % (args.iterations, args.seed, seconds, counts["ok"], counts["error"], counts["uncaught"], counts["hang"]))
    for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print("  %5d  %s" % (n, k))
    return 1 if counts["uncaught"] or counts["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
