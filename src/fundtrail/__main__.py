"""``python -m fundtrail``: the same as the ``fundtrail`` command."""

import sys

from fundtrail.cli.main import main

sys.exit(main())
