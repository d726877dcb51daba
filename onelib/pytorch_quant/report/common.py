"""What the parts of the fidelity report share: its JSON keys, the runtimes it can use, one
PyTorch value (integer codes on a grid, or floats) and its error type. No torch, no numpy at import."""
from ..circle import vocab
from ..errors import ConversionError

RUNTIMES = ("auto", "onert", "tico", "luci-interpreter")   # luci-interpreter: ONE's, via ONE_BIN_DIR

REPORT_KEYS = ("model", "engine", "runtime", "input", "options", "layers", "first_over_1lsb",
               "final", "notes", "timings")
LAYER_KEYS = ("index", "name", "pytorch_op", "circle_ops", "shape", "dtype", "scale", "zero_point",
              "per_op", "accumulated")
STATS_KEYS = ("max_lsb", "mean_lsb", "exact_share", "max_abs", "range_share", "runtime", "note", "error")
FINAL_KEYS = ("name", "shape", "scale", "max_lsb", "mean_lsb", "exact_share", "max_abs", "range_share",
              "top1", "top5", "runtime", "note", "error")
PT2_ENGINE = "exported program"   # the 'engine' of a .pt2 report: the program's own float ops

# fusedActivationFunction code -> the op it stands for
_ACT = dict((code, op) for op, code in vocab.ACT_OF_OP.items())
# the grids compared in LSB (an int32 tensor, e.g. a bias, is not compared on a grid)
_INT_RANGE = dict((k, vocab.INT_RANGE[k]) for k in ("uint8", "int8", "int16"))


class _FidelityError(ConversionError):
    """The fidelity report cannot be made (the message says why)."""


# ------------------------------------------------------------------------------ values
class _Value(object):
    """One PyTorch tensor: integer codes with (scale, zero point), or a float array."""

    __slots__ = ("array", "scale", "zero_point")

    def __init__(self, array, scale=None, zero_point=None):
        self.array = array
        self.scale = scale
        self.zero_point = zero_point

    @property
    def quantized(self):
        return self.scale is not None

    def real(self):
        import numpy as np
        if self.quantized:
            return (self.array.astype(np.float64) - self.zero_point) * float(self.scale)
        return self.array.astype(np.float64)



def _first_line(text):
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # onert's C++ reason is usually the last line of its stderr; keep both ends
    if len(lines) > 1:
        return "%s ... %s" % (lines[0], lines[-1])
    return lines[0] if lines else "unknown error"

