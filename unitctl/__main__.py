"""``python -m unitctl`` is ``unitctl``."""

from unitctl.cli.launch import main

main()
