import sys

from specstress.cli import main

sys.exit(main())
