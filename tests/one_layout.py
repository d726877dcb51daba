"""A ONE bin/ with this driver installed beside onecc, made from ONE_BIN_DIR in a scratch folder
(for tests and scripts that run ``onecc``; nothing of ONE is kept in this repository).

onecc finds import drivers in the folder of its own real file, so ONE's files are copied, not
linked (folders such as ``venv/`` are linked); this driver and ``onelib/pytorch_quant`` are linked,
as CMake's install puts them there.
"""
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def installed_bin(one_bin, folder):
    """``<folder>/one/bin``; the folders beside ONE's bin/ (``optimization/`` with the O1 group
    onecc's ``include=O1`` reads, ``lib/`` ...) are linked beside it."""
    prefix = os.path.join(folder, "one")
    b = os.path.join(prefix, "bin")
    os.makedirs(os.path.join(b, "onelib"))
    parent = os.path.dirname(os.path.abspath(one_bin))
    for n in os.listdir(parent):
        if os.path.join(parent, n) != os.path.abspath(one_bin) and os.path.isdir(os.path.join(parent, n)):
            os.symlink(os.path.join(parent, n), os.path.join(prefix, n))
    for n in os.listdir(one_bin):
        src = os.path.join(one_bin, n)
        if n == "onelib":
            for m in os.listdir(src):
                s = os.path.join(src, m)
                (shutil.copy2 if os.path.isfile(s) else os.symlink)(s, os.path.join(b, "onelib", m))
        elif os.path.isfile(src):
            shutil.copy2(src, os.path.join(b, n))
        else:
            os.symlink(src, os.path.join(b, n))
    os.symlink(os.path.join(ROOT, "onelib", "pytorch_quant"), os.path.join(b, "onelib", "pytorch_quant"))
    os.symlink(os.path.join(ROOT, "one-import-pytorch-quant"), os.path.join(b, "one-import-pytorch-quant"))
    return b
