"""Model: static knowledge of ONNX models and the values they take and give.

Owns model signatures, initializers, tensors and non-tensor values in their canonical form, how two
values compare, and whether a bundle's pieces agree with its model.
May import: ``ogverify.evidence`` and ``ogverify.errors``; never the runtime, check or CLI layers.
"""
