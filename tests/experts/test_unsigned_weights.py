"""The int8 graph's weights made unsigned: the same exact integer products, on every CPU.

On x86 CPUs without VNNI, ONNX Runtime multiplies uint8 × int8 with 16-bit saturating
sums; the values below saturate there (255·127 + 255·127 > 32,767), so the graph as written
gives a wrong product on such a machine, and the unsigned graph gives the exact one on any.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from detector_core.experts.clip import unsigned_weights


def _graph(weights: np.ndarray, zero_point: np.ndarray | None) -> onnx.ModelProto:
    inputs = ["a", "w"] + (["a_zp", "w_zp"] if zero_point is not None else [])
    inits = [numpy_helper.from_array(weights, "w")]
    if zero_point is not None:
        inits += [
            numpy_helper.from_array(np.array(0, dtype=np.uint8), "a_zp"),
            numpy_helper.from_array(zero_point, "w_zp"),
        ]
    node = helper.make_node("MatMulInteger", inputs, ["y"], name="mm")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, weights.shape[1]])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(model: onnx.ModelProto, a: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a})[0]


def _exact(a: np.ndarray, w: np.ndarray, zp: np.ndarray | None) -> np.ndarray:
    shift = 0 if zp is None else zp.astype(np.int64)
    return (a.astype(np.int64) @ (w.astype(np.int64) - shift)).astype(np.int32)


def test_unsigned_weights_give_the_exact_product_where_int8_would_saturate():
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (64, 16), dtype=np.int8)
    w[:, 0] = 127  # a column of large weights against large activations: saturates on AVX2
    zp = rng.integers(-3, 4, 16, dtype=np.int8)
    a = rng.integers(0, 256, (5, 64), dtype=np.uint8)
    a[0] = 255
    for zero_point in (zp, None):
        model = _graph(w, zero_point)
        assert unsigned_weights(model) == 1
        inits = {i.name: i for i in model.graph.initializer}
        node = model.graph.node[0]
        assert inits[node.input[1]].data_type == TensorProto.UINT8
        assert inits[node.input[3]].data_type == TensorProto.UINT8
        assert "w" not in inits  # the int8 original is dropped
        np.testing.assert_array_equal(_run(model, a), _exact(a, w, zero_point))


def test_a_graph_without_int8_weights_is_left_alone():
    w = np.arange(12, dtype=np.uint8).reshape(4, 3)
    model = _graph(w, np.zeros(3, dtype=np.uint8))
    before = model.SerializeToString()
    assert unsigned_weights(model) == 0
    assert model.SerializeToString() == before
