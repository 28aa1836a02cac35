"""Checks an ONNX file written by `lenet-gpu export` with the ONNX project's own tools:
onnx.checker (full check, with shape inference) and onnxruntime, whose distances and
digits must match the CPU reference's (a JSON file of pixels, distances and digits that
tests/onnx.rs writes).

    python3 tests/onnx_check.py MODEL.onnx REFERENCE.json
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(model_path, reference_path):
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    opset = {o.domain: o.version for o in model.opset_import}[""]
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ("pass", "seed", "test_error", "c3_table"):
        assert key in meta, f"metadata_props lacks {key}"

    ref = json.load(open(reference_path))
    pixels = np.array(ref["pixels"], dtype=np.float32).reshape(-1, 1, 28, 28)
    want = np.array(ref["distances"], dtype=np.float32)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    distances, digits = session.run(["distances", "digit"], {"input": pixels})
    assert distances.shape == want.shape, (distances.shape, want.shape)
    rel = np.abs(distances - want) / np.maximum(np.abs(distances), np.abs(want))
    worst = float(rel.max())
    assert worst <= ref["rtol"], f"worst relative error {worst:.2e} > {ref['rtol']}"
    assert digits.dtype == np.int64 and digits.tolist() == ref["digits"], "labels differ"

    # The classic five lines of the README, on the first digit alone.
    one = session.run(None, {"input": pixels[:1]})
    assert int(one[1][0]) == ref["digits"][0]

    print(
        f"onnx {onnx.__version__} checker: ok (opset {opset}); onnxruntime {ort.__version__}: "
        f"{len(digits)} digits, labels equal, worst relative error {worst:.2e}"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
