"""Packing: making evidence.

Owns ``pack`` (a model run into a bundle) and the ``Recorder`` (evidence written at inference time).
May import: interop, runtime, model, evidence, errors; never verify or the CLI.
"""
