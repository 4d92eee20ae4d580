"""``python -m ogverify``."""

from ogverify._entry import main

main()
