"""The part of ONNX's protobuf schema that ogverify reads, parsed without importing ``onnx``.

``check`` must read a model's graph inputs and every external-data location before onnxruntime
may load it, in the re-execution process, on the critical path; ``import onnx`` costs ~60 ms
there (its helpers, version lookup, ml_dtypes), protobuf itself ~15 ms. So this module declares
the messages and fields of ``onnx/onnx-ml.proto`` that ``ogverify.model.signature`` needs, under the same
field numbers and types, in a private descriptor pool, and protobuf parses model files with
them: fields left out are skipped as unknown fields, and every field kept follows protobuf's
own rules (repeated messages merged, last ``oneof`` member wins, proto2 enums), so what is read
is what onnx, and onnxruntime, read. ``tests/test_model.py`` compares both parsers field by
field and on mutated model files.
"""

from __future__ import annotations

import functools
from typing import Any

# message -> [(field, number, label, type)]; type is a scalar type name or another message.
_OPTIONAL, _REPEATED = "optional", "repeated"
_SCALARS = ("int32", "int64", "string", "DataLocation")
_MESSAGES: dict[str, list[tuple[str, int, str, str]]] = {
    "ModelProto": [("opset_import", 8, _REPEATED, "OperatorSetIdProto"), ("graph", 7, _OPTIONAL, "GraphProto"),
                   ("functions", 25, _REPEATED, "FunctionProto")],
    "OperatorSetIdProto": [("domain", 1, _OPTIONAL, "string"), ("version", 2, _OPTIONAL, "int64")],
    "GraphProto": [("node", 1, _REPEATED, "NodeProto"), ("initializer", 5, _REPEATED, "TensorProto"),
                   ("sparse_initializer", 15, _REPEATED, "SparseTensorProto"),
                   ("input", 11, _REPEATED, "ValueInfoProto"), ("output", 12, _REPEATED, "ValueInfoProto")],
    "FunctionProto": [("node", 7, _REPEATED, "NodeProto")],
    "NodeProto": [("attribute", 5, _REPEATED, "AttributeProto")],
    "AttributeProto": [("t", 5, _OPTIONAL, "TensorProto"), ("g", 6, _OPTIONAL, "GraphProto"),
                       ("sparse_tensor", 22, _OPTIONAL, "SparseTensorProto"),
                       ("tensors", 10, _REPEATED, "TensorProto"), ("graphs", 11, _REPEATED, "GraphProto"),
                       ("sparse_tensors", 23, _REPEATED, "SparseTensorProto")],
    "TensorProto": [("name", 8, _OPTIONAL, "string"),
                    ("external_data", 13, _REPEATED, "StringStringEntryProto"),
                    ("data_location", 14, _OPTIONAL, "DataLocation")],
    "SparseTensorProto": [("values", 1, _OPTIONAL, "TensorProto"), ("indices", 2, _OPTIONAL, "TensorProto")],
    "StringStringEntryProto": [("key", 1, _OPTIONAL, "string"), ("value", 2, _OPTIONAL, "string")],
    "ValueInfoProto": [("name", 1, _OPTIONAL, "string"), ("type", 2, _OPTIONAL, "TypeProto")],
    # Every member of TypeProto's oneof is declared: which one a model sets decides tensor or not.
    "TypeProto": [("tensor_type", 1, _OPTIONAL, "TensorType"), ("sequence_type", 4, _OPTIONAL, "SequenceType"),
                  ("map_type", 5, _OPTIONAL, "MapType"), ("optional_type", 9, _OPTIONAL, "OptionalType"),
                  ("sparse_tensor_type", 8, _OPTIONAL, "Opaque"), ("opaque_type", 7, _OPTIONAL, "Opaque")],
    "TensorType": [("elem_type", 1, _OPTIONAL, "int32"), ("shape", 2, _OPTIONAL, "TensorShapeProto")],
    # The non-tensor types (sequence, map, optional) ogverify stores and compares (ogverify.model.values).
    "SequenceType": [("elem_type", 1, _OPTIONAL, "TypeProto")],
    "MapType": [("key_type", 1, _OPTIONAL, "int32"), ("value_type", 2, _OPTIONAL, "TypeProto")],
    "OptionalType": [("elem_type", 1, _OPTIONAL, "TypeProto")],
    "TensorShapeProto": [("dim", 1, _REPEATED, "Dimension")],
    "Dimension": [("dim_value", 1, _OPTIONAL, "int64"), ("dim_param", 2, _OPTIONAL, "string")],
    "Opaque": [],
}
_ONEOFS = {"TypeProto": ("value", 6), "Dimension": ("value", 2)}  # message -> (name, how many fields)
_PACKAGE = "ogverify.onnx_subset"

# TensorProto.DataLocation.EXTERNAL
EXTERNAL = 1

# TensorProto.DataType -> the dtype name ogverify uses (numpy's, "string" for text), as onnx maps them.
ELEM_TYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16",
    17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz", 21: "uint4",
    22: "int4", 23: "float4_e2m1fn", 24: "float8_e8m0fnu", 25: "uint2", 26: "int2", 27: "float6_e2m3fn",
    28: "float6_e3m2fn",
}


@functools.cache
def model_class() -> Any:
    """The ModelProto message class of the subset schema (built once per process)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field_proto = descriptor_pb2.FieldDescriptorProto
    types = {"int32": field_proto.TYPE_INT32, "int64": field_proto.TYPE_INT64, "string": field_proto.TYPE_STRING,
             "DataLocation": field_proto.TYPE_ENUM}
    labels = {_OPTIONAL: field_proto.LABEL_OPTIONAL, _REPEATED: field_proto.LABEL_REPEATED}
    file = descriptor_pb2.FileDescriptorProto(name="ogverify/onnx_subset.proto", package=_PACKAGE, syntax="proto2")
    location = file.enum_type.add(name="DataLocation")
    location.value.add(name="DEFAULT", number=0)
    location.value.add(name="EXTERNAL", number=EXTERNAL)
    for name, fields in _MESSAGES.items():
        message = file.message_type.add(name=name)
        oneof = _ONEOFS.get(name)
        if oneof is not None:
            message.oneof_decl.add(name=oneof[0])
        for index, (field_name, number, label, kind) in enumerate(fields):
            field = message.field.add(name=field_name, number=number, label=labels[label])
            field.type = types.get(kind, field_proto.TYPE_MESSAGE)
            if kind not in _SCALARS or kind == "DataLocation":
                field.type_name = f".{_PACKAGE}.{kind}"
            if oneof is not None and index < oneof[1]:
                field.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ModelProto"))


def parse_model(data: bytes) -> Any:
    """Parse a serialized ModelProto (graph only: external data is not read).

    Raises:
        google.protobuf.message.DecodeError: not a valid protobuf message.
    """
    return model_class().FromString(data)
