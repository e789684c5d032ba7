import sys

from ensemble_nb.cli import main

sys.exit(main())
