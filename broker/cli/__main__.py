"""``python -m broker.cli``: the ``tessera`` command."""

import sys

from broker.cli.main import main

sys.exit(main())
