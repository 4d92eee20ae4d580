"""Safe unpacking of a bundle for other tools: model files, tensors as .npy, manifest.

Layout written under the target directory::

    manifest.json
    model/<model name>            (+ its external-data files, by their relative names)
    inputs/<tensor>.npy           (a sequence, map or optional: <name>.value, its canonical encoding,
    outputs/<tensor>.npy           which ``pack`` reads back; the claimed outputs under outputs/)
    signatures/<keyid>.dsse.json
    tensors.json                  tensor name → file, since tensor names need not be file names

Every blob is verified as it is written; names are confined to the target; the result is
staged next to the target and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ogverify.errors import BundleError, EvidenceMismatchError, TargetExistsError, UsageError
from ogverify.evidence.bundle import MANIFEST, finished_staging, new_staging, open_bundle, publish_mode
from ogverify.evidence.manifest import Entry, ValueEntry
from ogverify.evidence.materialise import materialise_model
from ogverify.evidence.paths import problem

UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def _file_names(entries: tuple[Entry, ...]) -> dict[str, str]:
    names: dict[str, str] = {}
    used: set[str] = set()
    for entry in entries:
        stem = UNSAFE_CHARS.sub("_", entry.name).lstrip(".")[:100] or "tensor"
        candidate, counter = stem, 1
        while candidate.lower() in used:
            counter += 1
            candidate = f"{stem}_{counter}"
        used.add(candidate.lower())
        names[entry.name] = f"{candidate}{'.value' if isinstance(entry, ValueEntry) else '.npy'}"
    return names


def extract_bundle(bundle_path: Path, target: Path, *, overwrite: bool = False) -> Path:
    """Unpack ``bundle_path`` into ``target`` (which must not exist, or be empty, unless ``overwrite``).

    Raises:
        UsageError: target exists. BundleError: unreadable bundle or a blob that does not verify.
    """
    if target.is_symlink():
        # Extract into the directory the link names (resolved once, here: nothing later follows
        # a link); a link to nothing is refused rather than created through.
        found = problem(target, want="directory")
        if found is not None:
            raise UsageError(f"{target} {found}")
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise TargetExistsError(target, "is not empty")
    if not target.parent.is_dir():
        raise UsageError(f"directory {target.parent} does not exist")
    staging = new_staging(target, directory=True)[0]
    try:
        _extract_into(bundle_path, staging)
        publish_mode(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        finished_staging(staging)
    return target


def _extract_into(bundle_path: Path, root: Path) -> None:
    with open_bundle(bundle_path) as bundle:
        manifest = bundle.manifest
        (root / MANIFEST).write_bytes(bundle.manifest_bytes)
        try:
            materialise_model(bundle, root / "model")
        except EvidenceMismatchError as exc:  # unsafe names: a bundle extract cannot unpack
            raise BundleError(exc.message) from exc
        index: dict[str, dict[str, str]] = {}
        for kind, label, entries in (
            ("inputs", "input", manifest.inputs),
            ("outputs", "claimed output", manifest.outputs),
        ):
            (root / kind).mkdir()
            names = _file_names(entries)
            for entry in entries:
                bundle.write_blob(entry.artifact, root / kind / names[entry.name], f"{label} '{entry.name}'")
            index[kind] = {entry.name: f"{kind}/{names[entry.name]}" for entry in entries}
        (root / "tensors.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if bundle.signature_envelopes:
            (root / "signatures").mkdir()
            for name, raw in bundle.signature_envelopes.items():
                (root / name).write_bytes(raw)
