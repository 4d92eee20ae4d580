"""Evidence: everything ogverify persists or signs.

Owns the bundle format (reader, writer, layout, limits, staging), the manifest and its schemas,
the execution configuration as recorded (``ExecutionConfig``), digests, canonical JSON, DSSE
signatures, IPFS CIDs, evidence logs (``log/``), the one safe way to write model files into a folder,
and ``JsonFields``, the ``to_json`` of value types whose JSON is their fields.
May import: ``ogverify.errors`` only (no numpy, onnx or onnxruntime at import time).
"""
