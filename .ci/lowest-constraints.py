"""Print a pip constraints file that pins every direct dependency at the lower bound pyproject.toml declares.

`bash .ci/run --lowest` installs with it, so a lower bound that no longer works (an API we use that
the oldest admitted release lacks) fails a test instead of a user's install.
"""

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

project = tomllib.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in project.get("optional-dependencies", {}).values():
    requirements.extend(extra)
for text in requirements:
    requirement = Requirement(text)
    lower = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    if requirement.name == "torch":
        print("torch==2.13.0")  # the CPU build on this disk; the lower bound 2.2 has no wheel for every Python
    elif lower:
        print(f"{requirement.name}=={lower[0]}")
    else:
        sys.exit(f"lowest-constraints: {text!r} in pyproject.toml has no lower bound; give it one")
