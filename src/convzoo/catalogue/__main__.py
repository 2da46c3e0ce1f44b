"""`python -m convzoo.catalogue [README.md]`: regenerate the README's table of papers."""

import sys
from pathlib import Path

from convzoo.catalogue import update_readme

path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
print(f"{path}: {'updated' if update_readme(path) else 'up to date'}")
