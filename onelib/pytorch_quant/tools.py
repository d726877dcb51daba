"""ONE's own tools as a second opinion on the circle we write.

Standard library only. The tools are looked up in this order, first directory that has them wins:

1. ``--one_bin_dir`` (an error if it has none of the tools: the user asked for it);
2. the environment variable ``ONE_BIN_DIR``;
3. the folder the driver was run from, then the driver's own (real) directory, when it holds
   ``circle-quantizer`` (we were installed, or linked, into ONE's bin);
4. the directory of the real ``onecc`` found on ``PATH``;
5. ``/usr/share/one/bin`` (the Debian package's place).

``circle-verify`` checks the flatbuffer structure only and is a build-tree tool, absent from an
installed ONE; ``circle-quantizer --fake_quantize`` loads the model through luci's importer and
validator and exports it again, so it is the check available in an installed ONE.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

CIRCLE_VERIFY = "circle-verify"
CIRCLE_QUANTIZER = "circle-quantizer"
CHECK_TOOLS = (CIRCLE_VERIFY, CIRCLE_QUANTIZER)
DEBIAN_BIN_DIR = "/usr/share/one/bin"
ENV_BIN_DIR = "ONE_BIN_DIR"


class ToolError(Exception):
    """ONE's tools cannot be found or run where the user said they are."""


class SubtoolError(ToolError):
    """A ONE tool exited with a non-zero code; the driver exits with the same code.

    ``message`` is the tool's own last error line, ``op`` the circle op or tensor it names
    (luci's messages end "... in <name>"), when it gave them."""

    def __init__(self, tool, returncode, logpath=None, message=None, op=None):
        self.tool = tool
        self.returncode = returncode
        self.logpath = logpath
        self.message = message
        self.op = op
        msg = "%s failed with exit code %d" % (tool, returncode)
        if op:
            msg += " at %s" % op
        if message:
            msg += ": %s" % message
        if logpath:
            msg += " (its output is in %s)" % logpath
        super(SubtoolError, self).__init__(msg)


def tool_message(output):
    """(the tool's error line, the op it names) from a ONE tool's output bytes."""
    lines = [ln.strip() for ln in output.decode("utf-8", "replace").splitlines() if ln.strip()]
    err = [ln for ln in lines if "error" in ln.lower() or "unsupported" in ln.lower()
           or "exception" in ln.lower() or "failed" in ln.lower()]
    message = (err or lines or [None])[-1]
    op = None
    if message:
        m = re.search(r" in ([^ ]+)\s*$", message)
        if m:
            op = m.group(1)
    return message, op


def default_driver_dir():
    """Where the driver lives: the directory holding ``onelib/pytorch_quant/``."""
    here = os.path.dirname(os.path.realpath(__file__))
    return os.path.dirname(os.path.dirname(here))


def _is_exe(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def has_tools(folder):
    """True when ``folder`` holds an executable circle-verify or circle-quantizer."""
    return bool(folder) and any(_is_exe(os.path.join(folder, t)) for t in CHECK_TOOLS)


def candidate_bin_dirs(environ=None, driver_dir=None):
    """(reason, folder) in the lookup order after ``--one_bin_dir``; folders may not exist."""
    environ = os.environ if environ is None else environ
    driver_dir = driver_dir or default_driver_dir()
    found = []
    if environ.get(ENV_BIN_DIR):
        found.append(("$" + ENV_BIN_DIR, environ[ENV_BIN_DIR]))
    # the folder the driver was run from: a symlink in ONE's bin/ (onecc runs it there) counts as
    # installed there, whatever folder the link points into
    invoked = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    if invoked and invoked != driver_dir and _is_exe(os.path.join(invoked, CIRCLE_QUANTIZER)):
        found.append(("driver's folder as run", invoked))
    if _is_exe(os.path.join(driver_dir, CIRCLE_QUANTIZER)):
        found.append(("driver directory", driver_dir))
    onecc = shutil.which("onecc", path=environ.get("PATH", os.defpath))
    if onecc:
        found.append(("onecc on PATH", os.path.dirname(os.path.realpath(onecc))))
    found.append(("default", DEBIAN_BIN_DIR))
    return found


def find_one_bin_dir(one_bin_dir=None, environ=None, driver_dir=None):
    """ONE's bin directory holding the check tools, or None when no candidate has them."""
    if one_bin_dir:
        if not has_tools(one_bin_dir):
            raise ToolError("--one_bin_dir %s: neither %s nor %s is there"
                            % (one_bin_dir, CIRCLE_VERIFY, CIRCLE_QUANTIZER))
        return os.path.abspath(one_bin_dir)
    for _reason, folder in candidate_bin_dirs(environ, driver_dir):
        if has_tools(folder):
            return os.path.abspath(folder)
    return None


def _emit(stream, data):
    """Write bytes to a binary or text stream."""
    if stream is None:
        return
    if hasattr(stream, "encoding"):  # a text stream
        stream.write(data.decode("utf-8", "replace"))
    else:
        stream.write(data)
    stream.flush()


def command_line(cmd):
    return " ".join(shlex.quote(str(c)) for c in cmd)


def run_tool(cmd, logfile=None, echo=None, capture=None):
    """Run ``cmd``; write its command line and then its output (stdout and stderr, as they come)
    to ``logfile`` and, when given, to ``echo``; append the output to the list ``capture`` when
    given. Returns the exit code."""
    line = (command_line(cmd) + "\n").encode("utf-8")
    _emit(logfile, line)
    _emit(echo, line)
    proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for chunk in iter(proc.stdout.readline, b""):
            _emit(logfile, chunk)
            _emit(echo, chunk)
            if capture is not None:
                capture.append(chunk)
        proc.stdout.close()
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    _emit(logfile, ("(exit code %d)\n" % rc).encode("utf-8"))
    return rc


def _run_check(tool, cmd, logfile, echo, logpath):
    out = []
    rc = run_tool(cmd, logfile, echo, capture=out)
    if rc != 0:
        message, op = tool_message(b"".join(out))
        raise SubtoolError(tool, rc, logpath, message, op)


def check_with_one_tools(path, bin_dir, logfile, keep_dir=None, name=None, echo=None, logpath=None):
    """Check the circle file ``path`` with every check tool ONE's ``bin_dir`` has.

    ``circle-verify <path>`` (flatbuffer structure; a build-tree tool) when present, and
    ``circle-quantizer --fake_quantize <path> <fq>`` (luci's importer and validator, and every op
    converted back to float: what an installed ONE can check) when present. The fake-quantized
    model ``<name>.fake_quant.circle`` is kept in ``keep_dir`` when given. Raises SubtoolError
    naming the tool, the op and the tool's message on a non-zero exit; returns the commands run.
    """
    verify = os.path.join(bin_dir, CIRCLE_VERIFY)
    quantizer = os.path.join(bin_dir, CIRCLE_QUANTIZER)
    if not _is_exe(verify) and not _is_exe(quantizer):
        raise ToolError("%s: neither %s nor %s is there" % (bin_dir, CIRCLE_VERIFY, CIRCLE_QUANTIZER))
    done = []
    if _is_exe(verify):
        cmd = [verify, path]
        _run_check(CIRCLE_VERIFY, cmd, logfile, echo, logpath)
        done.append(cmd)
    if not _is_exe(quantizer):
        return done
    stem = name or os.path.splitext(os.path.basename(path))[0]
    tmpdir = None
    try:
        if keep_dir is None:
            tmpdir = tempfile.mkdtemp(prefix="one-import-pytorch-quant.")
        fq = os.path.join(keep_dir or tmpdir, stem + ".fake_quant.circle")
        cmd = [quantizer, "--fake_quantize", path, fq]
        _run_check(CIRCLE_QUANTIZER + " --fake_quantize", cmd, logfile, echo, logpath)
        done.append(cmd)
        return done
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
