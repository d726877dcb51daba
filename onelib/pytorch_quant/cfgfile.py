"""Reading the driver's cfg section: INI as one-cmds reads it, or the same section in TOML.

Standard library only (tomllib, or tomli before Python 3.11), so the driver can use it without
torch or numpy. What differs from one-cmds, on purpose:

* booleans are normalised (``'False'`` is False; one-cmds keeps the string, which is truthy);
* an unknown key is an error that names the key and the section (one-cmds accepts anything);
* every value is checked against the key's kind (bool, string, choice, shapes) here, so a typo
  fails before any conversion starts.
"""
import configparser
import os
import re

TRUE_WORDS = ("true", "1", "yes", "y", "on")
FALSE_WORDS = ("false", "0", "no", "n", "off")

# Kinds of cfg values. A tuple of strings is a choice.
BOOL = "bool"
STR = "str"
SHAPES = "shapes"


class CfgError(ValueError):
    """The cfg file or a value in it is wrong; the message names the file, key and section."""


def _where(key, section):
    return "key '%s' in section [%s]" % (key, section)


def parse_bool(value, key, section):
    """One cfg boolean: a real bool (TOML) or one of TRUE_WORDS / FALSE_WORDS, any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CfgError("%s: '%s' is not a boolean (use one of: %s / %s)"
                   % (_where(key, section), value, ", ".join(TRUE_WORDS), ", ".join(FALSE_WORDS)))


def parse_shapes(value, where="--input_shapes"):
    """Input shapes as one-cmds writes them, ``1,3,224,224:1,10``, or (TOML) a list of lists.

    A single flat list of ints (TOML ``[1, 3, 224, 224]``) is one shape. Returns a list of lists
    of ints; ``None`` or an empty string means "not given".
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if not value:
            raise CfgError("%s: empty list of shapes" % where)
        if all(isinstance(d, int) and not isinstance(d, bool) for d in value):
            value = [value]
        shapes = []
        for shape in value:
            if not isinstance(shape, (list, tuple)) or \
                    not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
                raise CfgError("%s: %r is not a list of integer lists" % (where, value))
            shapes.append(list(shape))
    else:
        text = str(value).strip()
        if not text:
            return None
        shapes = []
        for part in text.split(":"):
            dims = [d.strip() for d in part.strip().strip("[]()").split(",")]
            if not all(re.match(r"^\d+$", d) for d in dims):
                raise CfgError("%s: '%s' is not a shape like 1,3,224,224 (several separated by ':')"
                               % (where, part))
            shapes.append([int(d) for d in dims])
    for shape in shapes:
        if any(d <= 0 for d in shape):
            raise CfgError("%s: shape %s has a dimension that is not positive" % (where, shape))
    return shapes


def _toml_module():
    try:
        import tomllib  # Python 3.11+
        return tomllib
    except ImportError:
        pass
    try:
        import tomli
        return tomli
    except ImportError:
        return None


MAX_CFG_BYTES = 1 << 20   # a cfg is a few hundred bytes; this keeps /dev/zero-like files out


def _read_text(path):
    if "\x00" in path:
        raise CfgError("%r: a cfg file name cannot hold a NUL character" % (path,))
    if not os.path.exists(path):
        raise CfgError("%s: no such cfg file" % path)
    if os.path.isdir(path):
        raise CfgError("%s: is a directory, not a cfg file" % path)
    if not os.path.isfile(path):
        raise CfgError("%s: is not a regular file (a FIFO, socket or device), not a cfg file" % path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CFG_BYTES + 1)
    except OSError as e:
        raise CfgError("%s: cannot be read: %s" % (path, e.strerror or e))
    if len(data) > MAX_CFG_BYTES:
        raise CfgError("%s: more than %d bytes: not a cfg file" % (path, MAX_CFG_BYTES))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CfgError("%s: not a text file (%s)" % (path, e))


def looks_like_toml(path, text):
    """By extension ``.toml``; otherwise by content: TOML if it parses as TOML.

    Real one-cmds cfgs never parse as TOML (unquoted paths, ``True``), and the few INI files that
    do (only numbers and lowercase true/false) mean the same thing read either way.
    """
    if path.lower().endswith(".toml"):
        return True
    toml = _toml_module()
    if toml is None:
        return False
    try:
        toml.loads(text)
    except Exception:  # tomllib.TOMLDecodeError, or tomli's: both are ValueErrors, be lenient
        return False
    return True


def _read_ini_section(path, text, section):
    parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    parser.optionxform = str  # keys are case-sensitive, as in one-cmds
    try:
        parser.read_string(text, source=path)
    except configparser.Error as e:
        raise CfgError("%s: %s" % (path, e))
    if not parser.has_section(section):
        raise CfgError("%s: no [%s] section" % (path, section))
    try:
        return dict(parser.items(section))
    except configparser.Error as e:  # interpolation errors ('%' in a value) surface here
        raise CfgError("%s: [%s]: %s" % (path, section, e))


def _read_toml_section(path, text, section):
    toml = _toml_module()
    if toml is None:
        raise CfgError("%s: reading a TOML cfg needs tomllib (Python 3.11+) or the tomli package" % path)
    try:
        data = toml.loads(text)
    except Exception as e:
        raise CfgError("%s: not valid TOML: %s" % (path, e))
    if section not in data:
        raise CfgError("%s: no [%s] table" % (path, section))
    table = data[section]
    if not isinstance(table, dict):
        raise CfgError("%s: '%s' is not a table" % (path, section))
    return dict(table)


def read_section(path, section):
    """The raw key/values of ``[section]`` in ``path`` (INI: strings; TOML: native values)."""
    text = _read_text(path)
    if looks_like_toml(path, text):
        return _read_toml_section(path, text, section)
    return _read_ini_section(path, text, section)


def normalise(raw, spec, section, path=None):
    """Check and convert raw values by ``spec`` (key -> BOOL | STR | SHAPES | tuple of choices).

    Returns ``{key: value}``; an empty string value means "not set" and is left out, as one-cmds
    treats an empty value as absent.
    """
    where_file = "%s: " % path if path else ""
    out = {}
    for key, value in raw.items():
        if key not in spec:
            raise CfgError("%sunknown key '%s' in section [%s] (known keys: %s)"
                           % (where_file, key, section, ", ".join(sorted(spec))))
        kind = spec[key]
        if kind == BOOL:
            try:
                out[key] = parse_bool(value, key, section)
            except CfgError as e:
                raise CfgError(where_file + str(e))
            continue
        if isinstance(value, str) and value.strip() == "":
            continue
        if kind == SHAPES:
            out[key] = parse_shapes(value, where_file + _where(key, section))
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise CfgError("%s%s: expected a string, got %r" % (where_file, _where(key, section), value))
        text = str(value).strip()
        if isinstance(kind, tuple) and text not in kind:
            raise CfgError("%s%s: '%s' is not one of %s"
                           % (where_file, _where(key, section), text, ", ".join(kind)))
        out[key] = text
    return out


def load(path, section, spec):
    """``read_section`` then ``normalise``: the checked values of one section."""
    return normalise(read_section(path, section), spec, section, path)


def merge(args, values):
    """Set each cfg value on ``args`` unless the command line gave it (its attribute is not None)."""
    for key, value in values.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def sections_with_key(path, key):
    """The sections of cfg ``path`` (INI or TOML) that hold ``key``; [] when it cannot be read.
    For the error that says where a key the driver missed is instead."""
    try:
        text = _read_text(path)
        if looks_like_toml(path, text):
            data = _toml_module().loads(text)
            return [s for s, t in data.items() if isinstance(t, dict) and key in t]
        parser = configparser.ConfigParser(inline_comment_prefixes=("#", ";"), interpolation=None)
        parser.optionxform = str
        parser.read_string(text, source=path)
        return [s for s in parser.sections() if parser.has_option(s, key)]
    except Exception:   # only a hint for another error: never fail here
        return []
