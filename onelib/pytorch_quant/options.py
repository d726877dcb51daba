"""The one option spec: every option of a conversion and of the driver, declared once.

Each ``Option`` says its name (the long flag and the cfg key), its kind, default, help, short flag
and where it applies. From ``OPTIONS`` are made:

* the driver's command line (``add_arguments``), the cfg keys it accepts and their kinds
  (``cfg_spec``, read by ``cfgfile``);
* the fidelity report's conversion flags (``add_arguments`` with ``CONVERT_NAMES``);
* ``ConvertOptions``, the options of ``api.convert``, which checks every value when it is built.

Standard library only (the driver imports it before it knows that torch is there).
"""
import numbers

from .cfgfile import BOOL, SHAPES, STR
from .errors import ConversionError

__all__ = ["Option", "OPTIONS", "CONVERT_NAMES", "ConvertOptions", "PROFILES", "PROFILE_MEANS",
           "cfg_spec", "add_arguments", "convert_kwargs"]

# kinds of value: cfgfile's BOOL, STR, SHAPES ("1,3,224,224:1,10" on the command line and in INI;
# a list of lists in TOML and Python) and a tuple of strings (a choice); and
PATH = "path"      # a string naming a file or folder: no NUL character (a STR in a cfg)

# where an option applies
CONVERT = "convert"   # a field of ConvertOptions: API, driver, cfg and the fidelity report
DRIVER = "driver"     # the driver: command line and cfg key
CLI = "cli"           # the driver's command line only (no cfg key)

# groups of the driver's --help
COMMON, CONVERSION, CHECKS = None, "conversion", "checks and files"

DTYPES = ("float32", "uint8", "int16")
LAYOUTS = ("nchw", "nhwc")
SOFTMAX_SCALES = ("1/256", "1/255")
# What each profile writes (passes/profiles.py holds the passes; the README explains the choice):
#   luci:  every op quantized in the forms luci's verifier and NPU backends take (HARD_SWISH, one
#          granularity per model, requantization as one QUANTIZE, data movement on integers);
#   onert: the exact workarounds for onert 0.1.0's CPU backend and luci-interpreter (per-channel FC
#          as 1x1 CONV_2D, float compositions for ops they lack or compute wrongly).
PROFILES = ("luci", "onert")
PROFILE_MEANS = {
    "luci": "fully quantized for luci, one-optimize and NPU backends",
    "onert": "exact on onert's CPU backend and luci-interpreter",
}


class Option(object):
    """One option. ``default`` is what ``ConvertOptions`` takes when it is not given; on the
    command line and in a cfg an option not given is None, so that the command line can win
    over the cfg. ``short``: the one-letter flag; ``dest``: when it differs from ``name``."""

    def __init__(self, name, kind, help, default=None, scope=DRIVER, group=COMMON, short=None,
                 metavar=None, flag=None):
        self.name = name
        self.kind = kind
        self.help = help
        self.default = default
        self.scope = scope
        self.group = group
        self.short = short
        self.metavar = metavar
        self.flag = flag or "--" + name   # -O has no long form

    @property
    def cfg(self):
        return self.scope in (CONVERT, DRIVER)

    @property
    def cfg_kind(self):
        """The kind ``cfgfile.normalise`` checks: bool, str, shapes or a tuple of choices."""
        return STR if self.kind == PATH else self.kind

    def argparse_kw(self):
        if self.kind == BOOL:
            kw = {"action": "store_true", "default": None}
        elif isinstance(self.kind, tuple):
            kw = {"choices": self.kind, "default": None}
        else:
            kw = {"type": str, "default": None}
        if self.metavar:
            kw["metavar"] = self.metavar
        if self.flag != "--" + self.name:
            kw["dest"] = self.name
        kw["help"] = self.help
        return kw

    def check(self, value):
        """``value`` as given to ConvertOptions is of this option's kind: else a ConversionError."""
        if isinstance(self.kind, tuple):
            if value not in self.kind:
                raise ConversionError("%s must be one of %s, not %r" % (self.name, ", ".join(self.kind), value))
        elif self.kind == BOOL:
            if not isinstance(value, bool):
                raise ConversionError("%s must be True or False, not %r" % (self.name, value))
        elif self.kind == SHAPES:
            _check_shapes(self.name, value)
        elif not isinstance(value, str):
            raise ConversionError("%s must be a string, not %r" % (self.name, value))


INT32 = 1 << 31


def _check_shapes(name, value):
    """None, or a list of shapes, each a list (or tuple) of integers in 1..2**31-1."""
    if value is None:
        return
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(s, (list, tuple)) and all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                                             for d in s) for s in value)
    if not ok:
        raise ConversionError("%s must be a list of shapes (lists of integers, e.g. [[1, 3, 224, 224]]), "
                              "not %r" % (name, value))
    for s in value:
        if any(int(d) <= 0 or int(d) >= INT32 for d in s):
            raise ConversionError("%s: shape %s has a dimension that is not in 1..%d"
                                  % (name, ",".join(str(d) for d in s), INT32 - 1))


OPTIONS = (
    # one-cmds' common flags
    Option("version", BOOL, "show program's version and exit", scope=CLI, short="-v"),
    Option("verbose", BOOL, "print each stage and each tool's output to stderr (and tracebacks on failure)",
           short="-V"),
    Option("config", STR, "run with the options of a cfg file (INI or TOML)", scope=CLI, short="-C"),
    Option("section", STR, None, scope=CLI, short="-S"),   # help suppressed: onecc's
    Option("target", STR, "accepted for onecc compatibility; ignored", short="-T"),
    Option("optimization", STR, "accepted for onecc compatibility; ignored", scope=CLI, flag="-O",
           metavar="OPT"),
    # the conversion
    Option("input_path", PATH, "quantized PyTorch model: TorchScript .pt or torch.export .pt2",
           group=CONVERSION, short="-i"),
    Option("output_path", PATH, "the .circle file to write", group=CONVERSION, short="-o"),
    Option("input_shapes", SHAPES, "input shapes for TorchScript, e.g. 1,3,224,224 (several separated "
           "by ':')", scope=CONVERT, group=CONVERSION),
    Option("input_type", DTYPES, "model input dtype: float32 keeps PyTorch's float input with a "
           "QUANTIZE inside (default float32)", default="float32", scope=CONVERT, group=CONVERSION),
    Option("output_type", DTYPES, "model output dtype: float32 keeps a float output with a DEQUANTIZE "
           "inside (default float32)", default="float32", scope=CONVERT, group=CONVERSION),
    Option("io_layout", LAYOUTS, "layout of 4-D inputs and outputs (default nchw, as in PyTorch)",
           default="nchw", scope=CONVERT, group=CONVERSION),
    Option("profile", PROFILES, "luci (default): every op quantized in the forms luci's verifier and "
           "NPU backends take; onert: the exact workarounds for onert 0.1.0's CPU backend and "
           "luci-interpreter (per-channel FC as 1x1 CONV_2D, float HARD_SWISH and MUL, no "
           "integer-to-integer QUANTIZE)", default="luci", scope=CONVERT, group=CONVERSION),
    Option("fc_as_conv", BOOL, "deprecated alias of --profile onert", default=False, scope=CONVERT,
           group=CONVERSION),
    Option("strict", BOOL, "fail when part of the graph stays float", default=False, scope=CONVERT,
           group=CONVERSION),
    # None: the profile's default (see ConvertOptions)
    Option("softmax_scale", SOFTMAX_SCALES, "uint8 SOFTMAX output scale: 1/255 as luci requires "
           "(default with --profile luci), 1/256 as TFLite writes it (default with --profile onert)",
           scope=CONVERT, group=CONVERSION),
    # checks and files
    Option("no_verify", BOOL, "skip the check with ONE's tools (circle-verify or circle-quantizer); "
           "the built-in check always runs", group=CHECKS),
    Option("one_bin_dir", PATH, "where ONE's tools are (default: $ONE_BIN_DIR, this driver's directory, "
           "onecc's directory, /usr/share/one/bin)", group=CHECKS, metavar="DIR"),
    Option("save_intermediate", BOOL, "keep intermediate files (the fake-quantized check model) beside "
           "the output", group=CHECKS),
    Option("verify_only", PATH, "only run the built-in luci-rule check on a circle file and print its "
           "findings; exit 1 if there are errors", group=CHECKS, metavar="FILE"),
)

BY_NAME = dict((o.name, o) for o in OPTIONS)
CONVERT_NAMES = tuple(o.name for o in OPTIONS if o.scope == CONVERT)


def cfg_spec():
    """cfg key -> kind, for ``cfgfile.load``: every option that has a cfg key."""
    return dict((o.name, o.cfg_kind) for o in OPTIONS if o.cfg)


def add_arguments(parser, names=None):
    """Add the flags of ``names`` (default: every option, in groups as the driver shows them)."""
    import argparse
    groups = {}
    for o in OPTIONS:
        if names is not None and o.name not in names:
            continue
        target = parser
        if names is None and o.group is not None:
            if o.group not in groups:
                groups[o.group] = parser.add_argument_group(o.group)
            target = groups[o.group]
        kw = o.argparse_kw()
        if kw["help"] is None:
            kw["help"] = argparse.SUPPRESS
        flags = ([o.short] if o.short else []) + [o.flag]
        target.add_argument(*flags, **kw)
    return parser


def convert_kwargs(args):
    """The ConvertOptions fields given in ``args`` (an argparse namespace): those not None."""
    return dict((k, getattr(args, k)) for k in CONVERT_NAMES if getattr(args, k, None) is not None)


class ConvertOptions(object):
    """Every knob of a conversion; the driver fills it from flags and cfg keys of the same name.
    Each value is checked here, when the options are built (``OPTIONS`` says what is valid)."""

    FIELDS = dict((o.name, o.default) for o in OPTIONS if o.scope == CONVERT)   # name -> default

    # not a cfg key: False (the driver) returns only the bytes and notes, and frees the loaded
    # torch module after reading and the source graph's weights after lowering, so the memory
    # peak stays near what loading the model costs
    keep_graphs = True

    def __init__(self, **kw):
        for k in kw:
            if k not in self.FIELDS:
                raise ConversionError("unknown option '%s'" % k)
        for k in CONVERT_NAMES:
            value = kw.get(k, self.FIELDS[k])
            if not (value is None and self.FIELDS[k] is None):
                BY_NAME[k].check(value)
            setattr(self, k, value)
        if self.fc_as_conv:
            if kw.get("profile", "onert") != "onert":
                raise ConversionError("fc_as_conv is an alias of profile=onert; it cannot be combined "
                                      "with profile=%s" % self.profile)
            self.profile = "onert"
        if self.softmax_scale is None:
            self.softmax_scale = "1/255" if self.profile == "luci" else "1/256"

    def __repr__(self):
        return "ConvertOptions(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.FIELDS)
