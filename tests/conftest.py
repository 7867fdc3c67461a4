"""Run tests from the project root so relative paths (inventory/lab) resolve."""

import os
from pathlib import Path

os.chdir(Path(__file__).resolve().parent.parent)
