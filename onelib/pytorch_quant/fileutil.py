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
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=folder)
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
