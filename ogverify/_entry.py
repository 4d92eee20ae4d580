"""The ``ogverify`` console entry point.

For ``check`` it starts the re-execution process before anything else is imported: that
process then loads numpy and onnxruntime while this one loads the CLI and verifies the
bundle, which is most of what a check costs over a bare onnxruntime run.
"""

from __future__ import annotations

import sys

# Flags that mean no re-execution happens in this process.
_NO_LOCAL_RERUN = {"--no-rerun", "--help", "-h", "--jobs", "-j", "--dask-scheduler"}


def main() -> None:
    """Run the ogverify command line."""
    arguments = sys.argv[1:]
    if arguments[:1] == ["check"] and not _NO_LOCAL_RERUN & {a.split("=")[0] for a in arguments}:
        from ogverify.runner import prestart

        prestart()
    from ogverify.cli import main as cli_main

    cli_main()
