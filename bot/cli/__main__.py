"""``python -m bot.cli``: the ``docgen`` command."""

import sys

from bot.cli import main

sys.exit(main())
