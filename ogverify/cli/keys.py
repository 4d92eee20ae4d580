"""``keygen`` and ``sign``: signing keys and signatures on bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import echo, guarded


@guarded
def keygen(
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="KEY", help="Private key file; the public key goes to KEY.pub.")] = Path("ogverify.key"),
    force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
) -> None:
    """Create an ed25519 signing key pair (private key file mode 0600)."""
    from ogverify.evidence.signing import generate_key_pair

    private, public, keyid = generate_key_pair(out, overwrite=force)
    echo(f"wrote {private} (private, keep it secret) and {public}")
    typer.echo(f"keyid {keyid}")


@guarded
def sign(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle to sign (either form).")],
    keys: Annotated[list[Path], typer.Option("--key", "-k", metavar="KEY", help="Private key. Repeatable.")],
) -> None:
    """Add a signature (DSSE envelope over an in-toto statement) to a bundle."""
    from ogverify.evidence.signing import sign_bundle

    for key in keys:
        keyid = sign_bundle(bundle, key)
        echo(f"signed {bundle} with key {keyid[:12]}")
