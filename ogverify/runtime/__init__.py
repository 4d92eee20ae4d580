"""Runtime: running onnxruntime.

Applies the recorded execution configuration through the one session builder (``session.py``);
owns the re-execution worker process and its typed jobs, trial runs, the sensitivity profile, the
recorded trace, and this machine's environment fingerprint.
May import: model, evidence, report (value types), errors. Kept empty: the console entry point
imports ``ogverify.runtime.child`` before anything else.
"""
