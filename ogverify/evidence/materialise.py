"""The one safe way to write a bundle's model files into a directory.

The model and its external-data files are named by the manifest, that is by whoever made the
bundle: a name must not point outside the directory (``../x``, an absolute path), and no two
names may land on one file or on each other's folders (``w`` beside ``w/x``). ``check``,
``extract``, ``diff`` and the model-signature check all write model files through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ogverify.errors import EvidenceMismatchError

if TYPE_CHECKING:
    from ogverify.evidence.bundle import Bundle
    from ogverify.evidence.manifest import Artifact, Manifest


def model_targets(manifest: Manifest, model_dir: Path) -> list[tuple[str, Artifact, Path]]:
    """Where the model and its external-data files go under ``model_dir``: (label as in
    ``Manifest.artifacts``, artifact, file), in manifest order. Folders are made, nothing is written.

    Raises:
        EvidenceMismatchError: a file name that points outside ``model_dir`` or appears twice.
        OSError: a folder cannot be made.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    root = model_dir.resolve()
    entries = (manifest.model, *manifest.model_files)
    targets: list[tuple[str, Artifact, Path]] = []
    seen: set[Path] = set()
    for label, entry in ((f"model '{manifest.model.name}'", manifest.model),
                         *((f"model file '{f.name}'", f) for f in manifest.model_files)):
        target = (root / entry.name).resolve()
        if not target.is_relative_to(root):
            raise EvidenceMismatchError(f"model file name {entry.name!r} points outside the model directory")
        if target in seen:
            raise EvidenceMismatchError(f"model file {entry.name!r} appears twice")
        seen.add(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        targets.append((label, entry.artifact, target))
    for (_, _, target), entry in zip(targets, entries, strict=True):
        if target.exists():  # a folder another name needs ("a" beside "a/b"), or a file already there
            raise EvidenceMismatchError(f"model file {entry.name!r} appears twice")
    return targets


def materialise_model(bundle: Bundle, model_dir: Path) -> Path:
    """Write the model and its external-data files, each verified, under ``model_dir``; the model's path.

    Raises:
        EvidenceMismatchError: a file name that points outside ``model_dir`` or appears twice.
        BundleError: a file that does not verify. OSError: a file cannot be written.
    """
    for label, artifact, target in model_targets(bundle.manifest, model_dir):
        bundle.write_blob(artifact, target, label.replace("model '", "model file '", 1))
    return model_dir / bundle.manifest.model.name
