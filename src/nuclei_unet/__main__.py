"""``python -m nuclei_unet``: the same as the ``nuclei-unet`` command."""

import sys

from nuclei_unet.cli import main

sys.exit(main())
