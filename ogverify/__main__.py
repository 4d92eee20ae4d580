"""``python -m ogverify``."""

from ogverify.cli.entry import main

main()
