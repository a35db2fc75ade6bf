import sys

from cacherr.cli import main

sys.exit(main())
