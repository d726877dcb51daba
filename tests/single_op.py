"""The shared part of the table-driven single-op tests (test_sweep_ops.py over tests/sweep.py, and
test_ops_extra.py): each case is a table row, and a module fixture builds only the rows this pytest
session selected (``-k name`` builds one), then runs all their onert jobs in one child process."""


def selected(request, module_name, names):
    """The parameter tuples ``names`` of the tests of ``module_name`` this session runs, in order,
    each once."""
    out, seen = [], set()
    for item in request.session.items:
        cs = getattr(item, "callspec", None)
        if item.module.__name__ != module_name or cs is None or not all(n in cs.params for n in names):
            continue
        key = tuple(cs.params[n] for n in names)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return out
