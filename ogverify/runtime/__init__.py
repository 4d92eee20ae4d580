"""Runtime: running onnxruntime.

Owns the execution configuration, the one session builder, the re-execution worker process and
its typed jobs, trial runs, and this machine's environment fingerprint.
May import: ``ogverify.model``, ``ogverify.evidence``, ``ogverify.errors``. Kept empty: the console
entry point imports ``ogverify.runtime.child`` before anything else.
"""
