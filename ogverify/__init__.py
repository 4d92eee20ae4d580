"""ogverify: pack the evidence of an AI inference into a signed bundle and check it by re-execution."""

from __future__ import annotations

__version__ = "0.1.0"
