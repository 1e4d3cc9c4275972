import sys

from vragent.cli import main

sys.exit(main())
