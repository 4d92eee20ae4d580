"""CLI: the ``ogverify`` command line (typer), its entry point and its rich console.

The only layer that prints, exits, or imports typer; rich only here and in the text formatter.
It parses arguments, calls the library, and prints what the errors' ``diagnostics()`` say.
"""
