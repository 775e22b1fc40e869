import sys

from helexa.cli import main

sys.exit(main())
