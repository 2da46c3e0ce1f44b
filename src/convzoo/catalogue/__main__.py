"""`python -m convzoo.catalogue [README.md]`: rescan the tests' claim markers into claims.json, then
regenerate the README's table of papers. Run it from the repository root (the README's folder holds tests/)."""

import sys
from pathlib import Path

from convzoo.catalogue import CLAIMS_PATH, update_readme, write_claims

path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
root = path.resolve().parent
if not (root / "tests").is_dir():
    sys.exit(f"{root / 'tests'} not found: run from the repository root")
print(f"{CLAIMS_PATH.name}: {'updated' if write_claims(root) else 'up to date'}")
print(f"{path}: {'updated' if update_readme(path) else 'up to date'}")
