"""Every outer config composes to exactly what it composed to before the configs shared a base.

The fixtures are ``openretina train --cfg job --config-name NAME`` as printed before the outer
configs were rewritten to extend ``base.yaml`` (issue 20); a change of any default shows up here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from openretina_cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "resolved_configs"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.yaml"))


def normalised(text: str) -> str:
    """The printed config with this machine's home and working directory replaced by placeholders."""
    for value, placeholder in ((os.getcwd(), "<cwd>"), (os.path.expanduser("~"), "<home>")):
        if value not in ("", "/"):
            text = text.replace(value, placeholder)
    return text


def test_every_outer_config_has_a_fixture() -> None:
    from openretina_cli.config_paths import packaged_config_dir

    outer = sorted(p.stem for p in packaged_config_dir().glob("*.yaml"))
    assert outer == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_outer_config_composes_as_before(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["train", "--cfg", "job", "--config-name", name])
    printed = normalised(capsys.readouterr().out)
    assert printed == normalised((FIXTURES / f"{name}.yaml").read_text())
