#!/usr/bin/env python3
"""Writes a bf16 copy of an fp16 ONNX model: initializers, value types,
Constant values and Cast targets. Kiln's --dtype converts only f32 floats,
so this is how the bf16 GPU kernels get checked on real weights (pycoder's
draft: kiln-agree --devices host,cuda, docs/Quantization.md).

  onnx-f16-to-bf16.py SRC/model.onnx DST/model.onnx   (weights: DST/model.onnx.data)
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


def to_bf16_bytes(array):
    """Round-to-nearest-even fp32 -> bf16 bit patterns."""
    bits = array.astype(np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16).tobytes()


def convert_tensor(tensor):
    if tensor.data_type != TensorProto.FLOAT16:
        return
    array = numpy_helper.to_array(tensor)
    tensor.ClearField("int32_data")
    tensor.ClearField("raw_data")
    tensor.data_type = TensorProto.BFLOAT16
    tensor.raw_data = to_bf16_bytes(array)


def main(src, dst):
    model = onnx.load(src)
    graph = model.graph
    for tensor in graph.initializer:
        convert_tensor(tensor)
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type == TensorProto.FLOAT16:
            tensor_type.elem_type = TensorProto.BFLOAT16
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" \
                    and attribute.i == TensorProto.FLOAT16:
                attribute.i = TensorProto.BFLOAT16
            if attribute.name == "value":
                convert_tensor(attribute.t)
    onnx.save(model, dst, save_as_external_data=True,
              all_tensors_to_one_file=True, location="model.onnx.data",
              size_threshold=1024)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
