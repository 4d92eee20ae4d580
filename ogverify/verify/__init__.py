"""Verify: the check pipeline and what decides a verdict.

Owns the stages of ``check`` (integrity, signatures, provenance, environment, re-execution, comparison), policy,
attestation, batches on a pool or Dask, the drift engine (``drift/``) and ``diff``.
May import: interop, runtime, model, evidence, report, errors; never the CLI (no printing, no typer or rich).
Progress goes out through ``gate.GateObserver`` (the CLI draws it); stages after the pipeline's own
(policy, verdict facts) run on the bundle it opened, as a ``pipeline.Stage``.
"""
