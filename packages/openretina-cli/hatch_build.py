"""Ship the repository's top-level ``configs/`` tree with the cli.

In the repository the tree sits two levels above this package; inside an sdist it sits beside this
file (the sdist build copies it there). The wheel always carries it as ``openretina_cli/configs``.
Editable installs skip the copy: the cli then reads the live tree from the repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        candidates = [root / "configs", root.parent.parent / "configs"]
        source = next((path for path in candidates if path.is_dir()), None)
        if source is None:
            raise RuntimeError(
                "openretina-cli build: no configs/ directory found at "
                + " or ".join(str(path) for path in candidates)
            )
        if self.target_name == "sdist":
            build_data["force_include"][str(source)] = "configs"
        elif self.target_name == "wheel" and version != "editable":
            build_data["force_include"][str(source)] = "openretina_cli/configs"
