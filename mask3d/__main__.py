import sys

from mask3d_cli import main

sys.exit(main())
