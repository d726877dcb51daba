"""Fuzz the driver's cfg handling: mutated INI and TOML cfg files through the driver's ``main``.

    venv/bin/python scripts/fuzz_cfg.py --iterations 10000 --seed 1         # the long run
    venv/bin/python scripts/fuzz_cfg.py --iterations 200 --seed 0           # what CI runs

Each case writes a cfg (valid ones from ``cfg/``, then mutated: keys known and unknown, values of
every kind, ``%`` interpolation, duplicate sections and keys, broken brackets, control and
non-UTF-8 bytes, deep TOML nesting, huge numbers, keys in other sections) and runs the driver's
``main(["-C", cfg])`` in this process with a SIGALRM timeout. The model paths in the cfg never
name a real model, so nothing converts: what is measured is that every outcome is exit 0/1/2/255
with at most one stderr line of the form ``one-import-pytorch-quant: <Error>: ...`` that is not an
internal error. Anything else counts as uncaught; a case over the timeout as a hang.
"""
import argparse
import contextlib
import importlib.machinery
import importlib.util
import io
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(REPO, "one-import-pytorch-quant")
NAME = "one-import-pytorch-quant"

KEYS = ["verbose", "target", "input_path", "output_path", "input_shapes", "input_type", "output_type",
        "io_layout", "fc_as_conv", "strict", "softmax_scale", "no_verify", "one_bin_dir",
        "save_intermediate", "verify_only", "unknown_key", "Input_Path", "", "a b", "[x]", "=", "#c"]
VALUES = ["True", "False", "true", "1", "0", "yes", "no", "maybe", "", " ", "%", "%(x)s", "%%", "1,3,8,8",
          "1,3,8,8:1,10", "0,3", "-1,3", "1,,3", "[1,3]", "a,b", "1" * 400, "float32", "uint8", "int16", "nchw",
          "nhwc", "1/256", "1/255", "missing.pt", "m.circle", "dir/", "/dev/null", "\u00e9", "\x00", "\t",
          "model.pt # comment", "'quoted'", '"quoted"', "[section]", "x = y", "99999999999999999999999"]
TOML_VALUES = ["true", "false", "1", "0", "-1", "1.5", "nan", "inf", '"s"', "'s'", "[]", "[1, 3, 8, 8]",
               "[[1, 3, 8, 8], [1, 10]]", "[[1, true]]", "[[[1]]]", "{}", "{a = 1}", '"""multi\nline"""',
               "1979-05-27T07:32:00Z", "0x10", "1e400", "99999999999999999999999999", '"1,3,8,8"',
               '"missing.pt"', '"%"']
SECTION = NAME


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang()


def load_driver():
    loader = importlib.machinery.SourceFileLoader("one_import_pytorch_quant_fuzz", DRIVER)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def make_ini(rng):
    lines = []
    sections = [SECTION] * 3 + ["onecc", "one-optimize", "One-Import-Pytorch-Quant", "", "DEFAULT"]
    for _ in range(rng.randint(0, 4)):
        sec = rng.choice(sections)
        lines.append(rng.choice(["[%s]", "[%s", "%s]", "[ %s ]", "[%s]"]) % sec)
        for _ in range(rng.randint(0, 8)):
            key, value = rng.choice(KEYS), rng.choice(VALUES)
            fmt = rng.choice(["%s=%s", "%s = %s", "%s: %s", "  %s=%s", "%s=%s ; c", "%s"])
            lines.append(fmt % ((key, value) if fmt.count("%s") == 2 else (key,)))
        if rng.random() < 0.2:
            lines.append(rng.choice(["  continuation", "# comment", "; comment", "\x00", "=value"]))
    return "\n".join(lines)


def make_toml(rng):
    lines = []
    for _ in range(rng.randint(0, 3)):
        sec = rng.choice([SECTION, SECTION, '"%s"' % SECTION, "onecc", "%s.sub" % SECTION, "[%s]" % SECTION])
        lines.append("[%s]" % sec)
        for _ in range(rng.randint(0, 8)):
            key = rng.choice(KEYS)
            if not key or not key.replace("_", "").isalnum():
                key = '"%s"' % key.replace('"', "")
            lines.append("%s = %s" % (key, rng.choice(TOML_VALUES)))
    if rng.random() < 0.1:
        depth = rng.choice([100, 1000, 100000])
        lines.append("deep = " + "[" * depth + "]" * depth)
    return "\n".join(lines)


def mutate_text(text, rng):
    b = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(rng.randint(0, 3)):
        if not b:
            break
        op = rng.randrange(3)
        i = rng.randrange(len(b))
        if op == 0:
            b[i] = rng.randrange(256)
        elif op == 1:
            del b[i:i + rng.randint(1, 10)]
        else:
            b[i:i] = rng.choice([b"[", b"]", b"=", b"%", b"\n", b"\xff", b'"', b"\x00", b"[[", b"{"])
    return bytes(b)


def base_cfgs():
    out = []
    folder = os.path.join(REPO, "cfg")
    for n in sorted(os.listdir(folder)):
        with open(os.path.join(folder, n), "rb") as f:
            out.append((n, f.read()))
    return out


def run_case(drv, cfg_path, extra, timeout):
    verbose = "-V" in extra
    err = io.StringIO()
    out = io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = drv.main(["-C", cfg_path] + extra)
    except Hang:
        return ("hang", traceback.format_exc(limit=-3))
    except SystemExit as e:   # -h / --version style exits are fine; anything else is not
        return ("uncaught", "SystemExit(%r): %s" % (e.code, err.getvalue()[-300:]))
    except BaseException as e:
        return ("uncaught", "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc(limit=-4)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    lines = [l for l in err.getvalue().splitlines() if l.strip()]
    if code not in (0, 1, 2, 255):
        return ("uncaught", "exit %r: %s" % (code, err.getvalue()[-300:]))
    if verbose:   # progress lines come first; the failure is still the last line
        lines = lines[-1:]
    if code == 1 and not lines:   # --verify_only: findings on stdout
        return "error"
    if code != 0 and (len(lines) != 1 or not lines[0].startswith(NAME + ": ")):
        return ("uncaught", "stderr not one driver line: %r" % err.getvalue()[-500:])
    if any("internal error" in l or "Traceback" in l for l in lines):
        return ("uncaught", lines[0])
    return "ok" if code == 0 else "error"


def fuzz(iterations, seed, timeout, save, verbose=False):
    drv = load_driver()
    rng = random.Random(seed)
    bases = base_cfgs()
    counts = {"ok": 0, "error": 0, "uncaught": 0, "hang": 0}
    kinds = {}
    work = tempfile.mkdtemp(prefix="fuzz_cfg_")
    cwd = os.getcwd()
    os.chdir(work)
    with open("garbage.pt", "wb") as f:
        f.write(b"not a model")
    start = time.time()
    try:
        for it in range(iterations):
            r = random.Random(rng.getrandbits(64))
            kind = r.randrange(4)
            if kind == 0:
                name, data = r.choice(bases)
                data = mutate_text(data.decode("utf-8", "replace"), r)
                ext = os.path.splitext(name)[1]
            elif kind == 1:
                data, ext = make_ini(r).encode("utf-8", "surrogateescape"), ".cfg"
            elif kind == 2:
                data, ext = make_toml(r).encode("utf-8"), r.choice([".toml", ".cfg"])
            else:
                data, ext = mutate_text(r.choice([make_ini, make_toml])(r), r), r.choice([".toml", ".cfg", ""])
            data = data.replace(b"m.pt", b"garbage.pt") if r.random() < 0.3 else data
            path = os.path.join(work, "case" + ext)
            with open(path, "wb") as f:
                f.write(data)
            extra = r.choice([[], [], ["-S", r.choice(["onecc", SECTION, "nope"])], ["-V"],
                              ["-o", "x.circle"], ["-i", "garbage.pt"]])
            result = run_case(drv, path, extra, timeout)
            for n in os.listdir(work):   # nothing may be written but the log
                if n.endswith(".circle") or ".tmp" in n:
                    result = ("uncaught", "left a file: %s" % n)
                    os.unlink(os.path.join(work, n))
            if isinstance(result, tuple):
                counts[result[0]] += 1
                key = result[1].splitlines()[0][:120] if result[1] else result[0]
                kinds[key] = kinds.get(key, 0) + 1
                if save:
                    os.makedirs(save, exist_ok=True)
                    out = os.path.join(save, "%s_%06d%s" % (result[0], it, ext))
                    shutil.copy(path, out)
                    with open(out + ".txt", "w") as f:
                        f.write("extra args: %r\n%s" % (extra, result[1]))
                if verbose:
                    print("iteration %d: %s %s" % (it, result[0], result[1]), flush=True)
            else:
                counts[result] += 1
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)
    return counts, kinds, time.time() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--save", help="folder to write failing cases to")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    counts, kinds, seconds = fuzz(args.iterations, args.seed, args.timeout, args.save and os.path.abspath(args.save),
                                  args.verbose)
    print("fuzz_cfg: %d iterations (seed %d) in %.0f s: %d accepted, %d one-line errors, %d uncaught, %d hangs"
          % (args.iterations, args.seed, seconds, counts["ok"], counts["error"], counts["uncaught"], counts["hang"]))
    for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print("  %5d  %s" % (n, k))
    return 1 if counts["uncaught"] or counts["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
