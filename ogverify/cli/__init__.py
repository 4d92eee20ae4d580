"""CLI: the ``ogverify`` command line (typer), its entry point and its rich console.

The only layer that prints, exits, or imports typer; rich only here and in the text formatter.
It parses arguments, calls the library, and prints what the errors' ``diagnostics()`` say.

Layout:

- ``entry.py``: the console script; starts a check's re-execution process before any import.
- ``app.py``: the typer app, its global options, and the one list of commands (--help order).
- ``common.py``: ``guarded`` (every error to one line and its exit code), ``emit``, ``emit_json``, ``echo``,
  ``typer_group`` (the help settings of the root and of ``log``), options several commands declare.
- one module per topic: ``keys.py`` (keygen, sign), ``pack.py``, ``check.py``, ``diff.py``,
  ``bundle.py`` (inspect, extract), ``fingerprint.py``, ``interop.py`` (cid, import, export: other
  systems' formats), ``profile.py`` (the sensitivity profile).

Adding a command: write it in ``ogverify/cli/<topic>.py`` as a function decorated with
``@guarded`` (parameters declared with ``typer.Option``/``typer.Argument``, heavy imports inside
the function), then register it in ``app.py`` beside the others::

    app.command()(topic.name)                        # ogverify name ...
    app.add_typer(topic.app, name="topic")           # or a group: ogverify topic SUB ...

where a group is ``app = typer.Typer(help=..., no_args_is_help=True)`` in its module, with
``@app.command()`` over its ``@guarded`` functions. Then regenerate the man page
(``python -m tools.gen_man``) and, if the command list changed, README's ``--help`` block.
"""
