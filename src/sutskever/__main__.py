import sys

from sutskever.cli import main

sys.exit(main())
