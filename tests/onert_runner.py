"""Child process for ``oracles.run_onert``: run one .circle model with onert.

Usage: python onert_runner.py MODEL.circle INPUTS.npz OUTPUTS.npz [BACKENDS]

Inputs are read from arrays ``i0, i1, ...`` and outputs written as ``o0, o1, ...``.
It runs in its own process because onert can crash the interpreter (e.g. the
``train`` backend segfaults), and because onert reports the real error text only
on the C++ side's stderr, which the parent captures.

It uses the low-level pybind session: ``onert.infer.session.infer`` fails for
uint8 inputs in onert 0.1.0 (circle-runtimes.md §1, defect 1).
"""

import sys

import numpy as np


def run(model_path, inputs, backends):
    import onert
    from onert.native.libnnfw_api_pybind import prepare_config

    sess = onert.infer.session(model_path, backends)
    raw = sess.session
    infos = sess.get_inputs_tensorinfo()
    if len(infos) != len(inputs):
        raise ValueError("model has %d inputs, %d given" % (len(infos), len(inputs)))
    for i, info in enumerate(infos):
        want_shape = tuple(int(d) for d in info.dims[:info.rank])
        want_dtype = np.dtype(info.dtype)
        # onert copies raw bytes; a wrong dtype or shape would run and give garbage.
        if tuple(inputs[i].shape) != want_shape or inputs[i].dtype != want_dtype:
            raise ValueError("input %d: model wants %s %s, got %s %s"
                             % (i, want_dtype, want_shape, inputs[i].dtype, inputs[i].shape))
    raw.set_prepare_config(prepare_config.ENABLE_INTERNAL_OUTPUT_ALLOC)
    raw.prepare()
    for i, a in enumerate(inputs):
        raw.set_input(i, np.ascontiguousarray(a))
    raw.run()
    return [np.array(raw.get_output(i)) for i in range(raw.output_size())]


def main(argv):
    if len(argv) not in (4, 5):
        sys.stderr.write(__doc__)
        return 2
    model_path, in_path, out_path = argv[1:4]
    backends = argv[4] if len(argv) == 5 else "cpu"
    with np.load(in_path) as npz:
        inputs = [npz["i%d" % i] for i in range(len(npz.files))]
    outputs = run(model_path, inputs, backends)
    np.savez(out_path, **{"o%d" % i: o for i, o in enumerate(outputs)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
