"""Evidence logs: one model and configuration, and an append-only Merkle log of inference records.

``merkle`` holds the RFC 9162 §2.1 tree (hashes, roots, inclusion and consistency proofs);
``note`` the C2SP signed-note checkpoints; ``store`` local folders and fsspec URLs; ``layout``
the tlog-tiles-style files of a log (hash tiles, entry bundles, blobs) and the record leaves;
``attached`` the proof a log attaches to an exported bundle. docs/log.md describes the format.
May import: ``ogverify.evidence`` and ``ogverify.errors`` (fsspec only inside functions).
"""
