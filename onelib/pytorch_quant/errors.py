"""Errors a user sees as one line: ``one-import-pytorch-quant: <Type>: <what and where>``."""
import collections


class ConversionError(Exception):
    """The input cannot be converted; the message names the file, op or module path and why."""


# how many module paths an unsupported kind lists before "+N more"
FIRST_PATHS = 3


class UnsupportedOpsError(ConversionError):
    """Several ops are not supported; all of them are listed at once, grouped by kind (the kind
    and its reason), most frequent first, each with its count and its first module paths:
    ``<source>: 124 unsupported ops of 10 kinds: aten::silu_ x7 [features.0.2, features.1.0.block.0.2,
    features.2.0.block.0.2, +4 more]; ...``. Both frontends, and the lowering, raise it."""

    def __init__(self, source, items):
        # items: list of (module path, op kind [: reason])
        self.items = list(items)
        super(UnsupportedOpsError, self).__init__("%s: %s" % (source, format_unsupported(self.items)))


def format_unsupported(items):
    """'N unsupported op(s)[ of K kinds]: kind xC [path, path, path, +M more]; ...' (one line)."""
    groups = collections.OrderedDict()
    for path, kind in items:
        groups.setdefault(kind, []).append(path or "<top>")
    order = sorted(groups, key=lambda k: -len(groups[k]))   # stable: first seen first among equals
    parts = []
    for kind in order:
        paths = groups[kind]
        shown = list(collections.OrderedDict.fromkeys(paths))[:FIRST_PATHS]
        more = len(paths) - len(shown)
        listed = ", ".join(shown) + (", +%d more" % more if more > 0 else "")
        parts.append("%s x%d [%s]" % (kind, len(paths), listed) if len(paths) > 1 else "%s [%s]" % (kind, listed))
    n = len(items)
    kinds = "" if len(groups) in (1, n) else " of %d kinds" % len(groups)
    return "%d unsupported op%s%s: %s" % (n, "" if n == 1 else "s", kinds, "; ".join(parts))
