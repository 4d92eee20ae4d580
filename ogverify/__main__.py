"""``python -m ogverify``."""

from ogverify.cli import main

main()
