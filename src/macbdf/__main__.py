import sys

from macbdf.cli import main

sys.exit(main())
