"""Drift: why a reproduction failed.

``engine`` searches one-knob variants of the recorded configuration and graph transformers;
``localise`` finds the graph node where two runs first part. May import runtime, model, evidence.
"""
