"""Errors a user sees as one line: ``one-import-pytorch-quant: <Type>: <what and where>``."""


class ConversionError(Exception):
    """The input cannot be converted; the message names the file, op or module path and why."""


class UnsupportedOpsError(ConversionError):
    """Several ops are not supported; all of them are listed at once."""

    def __init__(self, source, items):
        # items: list of (module path, op kind)
        self.items = list(items)
        listed = "; ".join("%s (%s)" % (path or "<top>", kind) for path, kind in self.items)
        super(UnsupportedOpsError, self).__init__(
            "%s: %d unsupported op%s: %s" % (source, len(self.items), "" if len(self.items) == 1 else "s", listed))
