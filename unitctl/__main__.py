"""``python -m unitctl`` is ``unitctl``."""

from unitctl.cli.main import main

main()
