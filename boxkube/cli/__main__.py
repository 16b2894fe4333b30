"""``python -m boxkube.cli``: the same as the `boxkube` command."""

import sys

from boxkube.cli.main import main

sys.exit(main())
