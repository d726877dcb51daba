"""The single-op harness both op tables run on (tests/sweep.py via test_sweep_ops.py, and
test_ops_extra.py): a case is a table row; a module fixture takes the rows this pytest session
selected (``selected``: ``-k name`` builds one row) and ``run_rows`` builds, converts and checks
them, with every onert job in one child process. Each table keeps its own oracles (LSB per op)."""


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


def run_rows(rows, build, take_onert, timeout):
    """The harness: ``{key: result}`` for the selected ``rows``.

    ``build(row)`` returns ``(key, result, onert_job)``: it builds, converts and checks the row on
    TICO, and gives the onert job ``(circle, inputs)`` or None. A row whose build raises has the
    result ``{"error": exception}``, reported by its own test. Every onert job then runs in one
    child process (a model that kills it fails alone) and ``take_onert(result, output or
    exception)`` stores what onert gave.
    """
    from onelib.pytorch_quant import runtimes

    res, jobs, job_keys = {}, [], []
    for row in rows:
        try:
            key, result, job = build(row)
        except RowError as e:  # reported by the case's own test
            res[e.key] = {"error": e.error}
            continue
        res[key] = result
        if job is not None:
            jobs.append(job)
            job_keys.append(key)
    if jobs:
        for key, out in zip(job_keys, runtimes.run_onert_many(jobs, timeout=timeout)):
            take_onert(res[key], out)
    return res


class RowError(Exception):
    """What ``build`` raises for a row that failed: the row's key and the original exception."""

    def __init__(self, key, error):
        Exception.__init__(self, key, error)
        self.key, self.error = key, error
