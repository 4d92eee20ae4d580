"""Report: findings, verdicts and their output formats.

Owns ``Finding``/``Report``/``Status`` and ``EnvironmentDifference``, summaries of many reports, and
``formats/`` (text, json, markdown, junit, sarif), loaded lazily.
May import: evidence (value types) and errors; never runtime.
"""
