"""Reading an untrusted zip (a ``.pt`` or ``.pt2``) with bounded memory and clear errors.

* The file must be a regular, readable file whose zip end record ends the file (a truncated
  archive is not mistaken for the zip stored inside it, such as a ``.pt2``'s sample inputs).
* Member sizes come from the zip directory and are checked before reading; reads are streamed
  and stop at the declared size, so a member that inflates beyond it (a zip bomb with a lying
  directory) is refused, not materialised. All members read together stay within a budget
  relative to the archive's size (``budget_for``): torch stores members uncompressed, so a real
  archive reads about its own size.
* Every failure (bad zip, zlib errors, encryption, CRC, unknown compression) is a
  ``ConversionError`` naming the file and the member.
* JSON that nests too deeply for the parser is an error naming the member.
"""
import json
import os
import stat
import struct
import zipfile

from ..errors import ConversionError

EOCD_SIG = b"PK\x05\x06"
EOCD_SIZE = 22
MAX_COMMENT = 0xFFFF
MAX_MEMBERS = 200000
# how much an archive may read in total: its size times this, plus a floor for tiny archives
BUDGET_FACTOR = 4
BUDGET_FLOOR = 16 << 20
READ_CHUNK = 1 << 20


def check_regular_file(path, source=None):
    """A readable regular file, or a ConversionError saying what it is instead."""
    source = source or path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConversionError("%s: no such file" % source)
    except OSError as e:
        raise ConversionError("%s: cannot be read: %s" % (source, e.strerror or e))
    except ValueError:   # a NUL character in the name
        raise ConversionError("%r: not a file name (it holds a NUL character)" % (source,))
    if stat.S_ISDIR(st.st_mode):
        raise ConversionError("%s: is a directory, not a model file" % source)
    if not stat.S_ISREG(st.st_mode):
        raise ConversionError("%s: is not a regular file (a FIFO, socket or device)" % source)
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise ConversionError("%s: cannot be read: %s" % (source, e.strerror or e))
    return st.st_size


def has_end_record(path):
    """True when the zip end-of-central-directory record, with its comment, ends the file."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size < EOCD_SIZE:
            return False
        n = min(size, EOCD_SIZE + MAX_COMMENT)
        f.seek(size - n)
        tail = f.read(n)
    i = tail.rfind(EOCD_SIG)
    while i >= 0:
        if i + EOCD_SIZE <= len(tail):
            comment = struct.unpack("<H", tail[i + 20:i + 22])[0]
            if i + EOCD_SIZE + comment == len(tail):
                return True
        i = tail.rfind(EOCD_SIG, 0, i)
    return False


def budget_for(size):
    return BUDGET_FLOOR + BUDGET_FACTOR * size


class Zip(object):
    """A zip opened for bounded reads; ``names`` is the set of member names."""

    def __init__(self, path, source=None, what="archive"):
        self.source = source or path
        self.size = check_regular_file(path, self.source)
        if not zipfile.is_zipfile(path):
            raise ConversionError("%s: not a TorchScript or torch.export %s (not a zip file)"
                                  % (self.source, what))
        if not has_end_record(path):
            raise ConversionError("%s: the zip end record is missing or not at the end of the file "
                                  "(a truncated or appended-to %s)" % (self.source, what))
        try:
            self.zip = zipfile.ZipFile(path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
                struct.error, UnicodeDecodeError, NotImplementedError, OverflowError) as e:
            raise ConversionError("%s: not a readable %s: %s" % (self.source, what, _reason(e)))
        if len(infos) > MAX_MEMBERS:
            self.zip.close()
            raise ConversionError("%s: %d zip members (more than %d)" % (self.source, len(infos), MAX_MEMBERS))
        self.infos = {}
        for info in infos:
            if info.filename in self.infos:
                self.zip.close()
                raise ConversionError("%s: member %s appears twice in the zip directory"
                                      % (self.source, info.filename))
            self.infos[info.filename] = info
        self.names = set(self.infos)
        self.budget = budget_for(self.size)
        self.spent = 0

    def close(self):
        self.zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def declared_size(self, name):
        return self.infos[name].file_size

    def read(self, name, limit=None):
        """The bytes of member ``name``: its declared size is checked against ``limit`` and
        the archive's budget before reading, and the read stops there."""
        info = self.infos.get(name)
        if info is None:
            raise ConversionError("%s: the archive has no member %s" % (self.source, name))
        size = info.file_size
        if limit is not None and size > limit:
            raise ConversionError("%s: member %s declares %d bytes, more than the %d it may hold"
                                  % (self.source, name, size, limit))
        if self.spent + size > self.budget:
            raise ConversionError("%s: member %s declares %d bytes; with what was read before, more "
                                  "than %d bytes from a %d-byte archive (a zip bomb?)"
                                  % (self.source, name, size, self.budget, self.size))
        if info.flag_bits & 0x1:
            raise ConversionError("%s: member %s is encrypted" % (self.source, name))
        chunks, got = [], 0
        try:
            with self.zip.open(info) as f:
                while got <= size:
                    chunk = f.read(min(READ_CHUNK, size + 1 - got))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
        except ConversionError:
            raise
        except Exception as e:   # zlib.error, BadZipFile (CRC), NotImplementedError, EOFError...
            raise ConversionError("%s: member %s cannot be read: %s" % (self.source, name, _reason(e)))
        if got != size:
            raise ConversionError("%s: member %s holds %s bytes, not the %d its zip entry declares"
                                  % (self.source, name, "more" if got > size else got, size))
        self.spent += size
        return b"".join(chunks)

    def read_json(self, name, limit=None):
        return parse_json(self.read(name, limit), "%s: %s" % (self.source, name))


def _reason(e):
    text = str(e).strip().splitlines()
    return "%s (%s)" % (text[0], type(e).__name__) if text else type(e).__name__


def parse_json(data, where):
    """JSON bytes -> value; ConversionError naming ``where`` for bad UTF-8, bad JSON or nesting
    deeper than the parser allows (json's C scanner counts its depth and raises RecursionError:
    it does not overflow the stack)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConversionError("%s: not UTF-8 text (%s)" % (where, e))
    try:
        return json.loads(text)
    except RecursionError:
        raise ConversionError("%s: JSON nested too deeply" % where)
    except (ValueError, OverflowError) as e:
        raise ConversionError("%s: not valid JSON: %s" % (where, _reason(e)))
