"""The retina zoo of tools/bench: its members span what the issue asks, and their options reach the
generator intact (through `openretina create-data --option`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench"
sys.path.insert(0, str(BENCH))

import zoo  # noqa: E402
from openretina_cli.commands.create_data import parse_option  # noqa: E402
from openretina_data import write_retina_dataset  # noqa: E402


def test_the_zoo_spans_rates_filters_sizes_colours_and_populations() -> None:
    members = zoo.MEMBERS
    assert len(members) >= 8
    assert {30.0, 75.0, 100.0} <= {m.frame_rate_hz for m in members}
    assert min(m.filter_ms for m in members) <= 100
    assert max(m.filter_ms for m in members) >= 600
    colours = {m.options.get("num_colors", 2) for m in members}
    assert colours == {1, 2, 3}
    assert {"on", "off"} <= {m.options.get("polarity", "mixed") for m in members}
    sizes = [m.options.get("centre_sigma", (1.3, 2.0)) for m in members]
    assert min(s[0] for s in sizes) < 0.5
    assert max(s[1] for s in sizes) >= 3.0
    assert max(m.options.get("height", 18) for m in members) == 64
    neurons = [m.options.get("num_sessions", 2) * m.options.get("neurons_per_session", 32) for m in members]
    assert min(neurons) <= 12
    assert max(neurons) >= 200
    assert len({m.name for m in members}) == len(members)


def test_cli_options_round_trip_through_create_data_parsing() -> None:
    for member in zoo.MEMBERS:
        args = member.cli_options()
        parsed = dict(parse_option(text) for flag, text in zip(args[::2], args[1::2], strict=True))
        expected = member.generator_options()
        assert parsed.keys() == expected.keys()
        for key, value in expected.items():
            assert parsed[key] == (list(value) if isinstance(value, tuple) else value), (member.name, key)
        assert member.generator_options()["filter_frames"] >= member.filter_ms * member.frame_rate_hz / 1000


def test_every_member_is_accepted_by_the_generator(tmp_path: Path) -> None:
    for member in zoo.MEMBERS:  # tiny versions: the options, with few frames and pixels
        small = {
            **member.generator_options(),
            "train_frames": 100,
            "clip_length": 50,
            "neurons_per_session": 2,
        }
        small.update(
            height=8, width=8, num_sessions=1, test_frames=max(60, small["filter_frames"]), test_trials=2
        )
        write_retina_dataset(tmp_path / member.name, **small)


def test_by_name_keeps_zoo_order_and_names_the_choices() -> None:
    assert [m.name for m in zoo.by_name(["wide_centres", "builtin"])] == ["builtin", "wide_centres"]
    assert zoo.by_name(None) == list(zoo.MEMBERS)
    with pytest.raises(ValueError, match="unknown nope; choose from"):
        zoo.by_name(["nope"])


def _realistic(member: zoo.Member) -> bool:
    return member.name.startswith("noisy_")


def test_some_members_are_as_noisy_as_real_recordings() -> None:
    noisy = [m for m in zoo.MEMBERS if _realistic(m)]
    assert len(noisy) >= 3
    for member in noisy:  # issue 24: 0.05-0.5 spikes per frame, 3,000-9,000 training frames
        assert 0.05 <= member.options["mean_rate"] <= 0.5, member.name
        assert 3000 <= member.options.get("train_frames", 9000) <= 9000, member.name


@pytest.mark.slow
def test_the_noisy_members_ceilings_are_those_of_real_recordings(tmp_path: Path) -> None:
    """Generated at full size, each noisy member's ceiling (the true rate's correlation with the
    observed trial mean, averaged over neurons and sessions) lies in 0.5-0.8."""
    import h5py
    import numpy as np

    for member in filter(_realistic, zoo.MEMBERS):
        folder = write_retina_dataset(tmp_path / member.name, **member.generator_options())
        with h5py.File(next(folder.rglob("*truth*.h5")), "r") as truth:
            ceiling = np.mean([truth[s].attrs["mean_ceiling"] for s in truth if s.startswith("session")])
        assert 0.5 <= ceiling <= 0.8, (member.name, ceiling)
