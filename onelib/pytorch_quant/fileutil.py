"""Output files are written whole or not at all."""
import os
import tempfile


def write_atomic(path, data, check=None, suffix=".tmp"):
    """Write ``data`` to a temporary file beside ``path``, let ``check(tmp_path)`` look at it (it
    raises to refuse), then rename it into place. On any failure nothing is left behind and an
    existing ``path`` is untouched. The file gets the mode a plain ``open()`` would give it
    (mkstemp makes 0600 files)."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(os.path.basename(path), suffix), suffix=suffix,
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


NAME_MAX = 255   # bytes in one file name on Linux, macOS and Windows file systems


def _temp_prefix(base, suffix):
    """``.<base>.`` shortened so that prefix + 8 random characters + suffix still fits one file
    name (a legal 251-character output name must not fail because its temporary name is longer)."""
    room = NAME_MAX - len(os.fsencode(suffix)) - 8 - 2
    raw = os.fsencode(base)
    if len(raw) > room:
        raw = raw[:max(room, 1)]
        base = os.fsdecode(raw)
    return "." + base + "."
