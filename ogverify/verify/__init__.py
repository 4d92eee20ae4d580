"""Verify: the check pipeline and what decides a verdict.

Owns the stages of ``check`` (integrity, signatures, provenance, environment, re-execution, comparison), policy,
attestation, batches on a pool or Dask, the drift engine (``drift/``) and ``diff``.
May import: interop, runtime, model, evidence, report, errors; never the CLI (no printing, no typer or rich).
"""
