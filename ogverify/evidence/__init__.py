"""Evidence: everything ogverify persists or signs.

Owns the bundle format (reader, writer, layout, limits, staging), the manifest and its schemas,
digests, canonical JSON, DSSE signatures, and the one safe way to write model files into a folder.
May import: ``ogverify.errors`` only (no numpy, onnx or onnxruntime at import time).
"""
