"""Where the Hydra config tree lives, and how a user's own config directory reaches it.

A wheel carries the tree as ``openretina_cli/configs``; an editable or source checkout reads the
repository's top-level ``configs/`` directly, so edits there take effect without reinstalling.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_CONFIG_NAME = "simulated_retina_core_readout"


def packaged_config_dir() -> Path:
    """The config tree shipped with this installation (wheel first, then the source checkout)."""
    packaged = Path(str(resources.files("openretina_cli") / "configs"))
    if packaged.is_dir():
        return packaged
    # src/openretina_cli/config/paths.py -> the repository root is five levels up.
    checkout = Path(__file__).resolve().parents[5] / "configs"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"openretina: no config tree found (looked in {packaged} and {checkout}); "
        "reinstall openretina-cli or pass --config-path DIR"
    )


_registered = False


def register_packaged_search_path() -> None:
    """Append the packaged config tree to Hydra's search path for every run (once per process).

    A user's ``--config-path my_configs`` then composes ``model=core_readout`` or
    ``trainer=debug`` from the packaged groups without copying them; files in the user's own
    directory take precedence because Hydra searches the primary config directory first.
    """
    global _registered
    if _registered:
        return
    from hydra.core.config_search_path import ConfigSearchPath
    from hydra.core.plugins import Plugins
    from hydra.plugins.search_path_plugin import SearchPathPlugin

    class OpenretinaSearchPathPlugin(SearchPathPlugin):
        def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
            search_path.append(provider="openretina", path=f"file://{packaged_config_dir()}")

    Plugins.instance().register(OpenretinaSearchPathPlugin)
    _registered = True
