"""The parameter sweep (tests/sweep.py): every converted op over the parameter space PyTorch
accepts, on TorchScript eager x86 / qnnpack and PT2E XNNPACK, against PyTorch element by element.

The default run checks a fixed-seed sample (sweep.SAMPLE cases per op); the whole grid is
marked ``slow``: ``pytest -m "" tests/test_sweep_ops.py`` runs all of it (or ``scripts/sweep_ops.py``, which
prints the counts per op). Only the selected cases are built, and all their onert runs share
one child process.
"""
import pytest

import sweep as S
from single_op import selected

_SAMPLED = set((c.id, fe) for c, fe in S.default_sample())
_BY_ID = dict((c.id, c) for c in S.GRID)
PARAMS = [pytest.param(c.id, fe, id="%s-%s" % (c.id, fe),
                       marks=() if (c.id, fe) in _SAMPLED else pytest.mark.slow)
          for c, fe in S.items()]
MEASURED = {}   # (case id, frontend, oracle) -> max LSB


@pytest.fixture(scope="module")
def results(request, tmp_path_factory):
    """Results of every sweep case this session selected, computed together."""
    chosen = [(_BY_ID[case_id], fe) for case_id, fe in selected(request, __name__, ("case_id", "frontend"))]
    return S.run_cases(chosen, str(tmp_path_factory.mktemp("sweep")))


@pytest.mark.parametrize("case_id, frontend", PARAMS)
def test_sweep(results, case_id, frontend):
    case = _BY_ID[case_id]
    r = results[(case_id, frontend)]
    if "error" in r:
        raise r["error"]
    if case.refuse:
        assert r["refused"] is not None, "%s: converted, but circle cannot express it exactly" % case_id
        assert case.refuse in r["refused"] and "\n" not in r["refused"], r["refused"]
        return
    for oracle, worst in sorted(r["lsb"].items()):
        if isinstance(worst, Exception):
            raise worst
        MEASURED[(case_id, frontend, oracle)] = worst
        assert worst <= S.LIMIT, "%s/%s: %s is %d LSB from PyTorch (circle ops %s)" % (
            case_id, frontend, oracle, worst, r["kinds"])
    assert "tico" in r["lsb"]
    if r["onert_gap"] is None:
        assert "onert" in r["lsb"], "%s: not run on onert" % case_id


def test_grid_is_sampled_per_op():
    """Every op family has cases in the default run and the sample is the fixed-seed one."""
    sample = S.default_sample()
    assert sample == S.default_sample()
    counts = S.counts(sample)
    assert all(n > 0 for n in counts.values()), counts
