"""Characterisation stimuli, indices, receptive-field fits and functional types (issue 22)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import openretina_models as om
import pytest
import torch
from openretina_models.insilico import characterisation, functional_types, indices, receptive_fields, stimuli
from openretina_models.threads import OneThreadWorkers, one_thread

DATA_INFO = {
    "input_shape": [2, 12, 10],
    "frame_rate_hz": 30.0,
    "pixel_size_um": 25.0,
    "stimulus_range": {"min": [-3.0, -2.0], "max": [4.0, 2.5]},
}


def _tiny_model(in_shape: tuple[int, int, int], sessions: dict[str, int], hidden: int) -> torch.nn.Module:
    """A one-layer core + readout model with 3-frame, 3-pixel kernels."""
    return om.create_model(
        "core_readout",
        in_shape=in_shape,
        n_neurons=sessions,
        hidden_channels=[hidden],
        temporal_kernel_sizes=3,
        spatial_kernel_sizes=3,
    )


@pytest.fixture
def space() -> stimuli.StimulusSpace:
    return stimuli.StimulusSpace.from_data_info(DATA_INFO)


def test_space_reads_units_and_a_symmetric_amplitude_from_data_info(space: stimuli.StimulusSpace) -> None:
    assert space.shape == (2, 12, 10)
    assert (space.frame_rate_hz, space.pixel_size_um) == (30.0, 25.0)
    assert space.amplitude == (3.0, 2.0)  # the largest range symmetric about the training mean
    assert space.note is None
    bare = stimuli.StimulusSpace.from_data_info({"input_shape": [1, 4, 4]})
    assert bare.amplitude == (stimuli.DEFAULT_AMPLITUDE,)
    assert "no training stimulus range" in bare.note
    given = stimuli.StimulusSpace.from_data_info(
        {"input_shape": [1, 4, 4]}, frame_rate_hz=60, pixel_size_um=5
    )
    assert (given.frame_rate_hz, given.pixel_size_um) == (60.0, 5.0)


def test_raw_display_levels_go_through_the_stored_normalisation(space: stimuli.StimulusSpace) -> None:
    info = {"stimulus_normalisation": {"mean": [100.0, 50.0], "std": [20.0, 10.0]}}
    raw = space.from_raw_levels([0.0, 0.0], [255.0, 255.0], info)
    assert raw.amplitude == pytest.approx((100.0 / 20.0, 50.0 / 10.0))


def test_chirp_has_the_baden_timings_and_normalised_contrast(space: stimuli.StimulusSpace) -> None:
    chirp = stimuli.chirp(space)
    assert chirp.movies.shape == (1, 2, 33 * 30, 12, 10)
    seg = chirp.segments
    assert seg["dark"] == (0, 60)
    assert seg["light_step"] == (60, 150)
    assert seg["dark_step"] == (150, 240)
    assert seg["frequency_sweep"] == (300, 540)
    assert seg["contrast_sweep"] == (600, 840)
    movie = chirp.movies[0]
    assert torch.allclose(movie[0, 70], torch.full((12, 10), 3.0))  # light step: +amplitude of channel 0
    assert torch.allclose(movie[1, 10], torch.full((12, 10), -2.0))  # dark: -amplitude of channel 1
    assert movie.abs().amax(dim=(2, 3)).max(dim=1).values.tolist() == pytest.approx([3.0, 2.0])
    # the contrast sweep grows: its last second is stronger than its first
    contrast = chirp.contrast[0, 0]
    assert contrast[600:630].abs().max() < 0.2 < contrast[810:840].abs().max()
    per_channel = stimuli.chirp(space, per_channel=True)
    assert per_channel.movies.shape[0] == 2
    assert per_channel.movies[0, 1].abs().max() == 0  # channel 1 stays grey in channel 0's chirp


def test_chirp_needs_the_frame_rate_and_a_showable_frequency() -> None:
    bare = stimuli.StimulusSpace.from_data_info({"input_shape": [1, 4, 4]})
    with pytest.raises(stimuli.StimulusError, match=r"frame rate is unknown.*frame_rate_hz"):
        stimuli.chirp(bare)
    slow = stimuli.StimulusSpace.from_data_info({"input_shape": [1, 4, 4], "frame_rate_hz": 10})
    with pytest.raises(stimuli.StimulusError, match="below half the frame rate"):
        stimuli.chirp(slow)


def test_moving_bars_move_in_the_stated_direction(space: stimuli.StimulusSpace) -> None:
    bars = stimuli.moving_bars(space, directions=4, width_um=50, speed_um_per_s=750)
    assert len(bars) == 4
    assert [c["direction_deg"] for c in bars.conditions] == [0, 90, 180, 270]
    a, b = bars.segments["sweep"]
    assert bars.parameters["pixels_per_frame"] == pytest.approx(1.0)
    for k, axis, sign in ((0, 2, 1), (1, 1, -1), (2, 2, -1), (3, 1, 1)):  # dims of (T, H, W): 1 rows, 2 cols
        movie = bars.movies[k, 0, a:b]
        weight = movie.sum(dim=3 - axis)  # (T, rows or cols)
        centre = (weight * torch.arange(weight.shape[1])).sum(1) / weight.sum(1).clamp_min(1e-9)
        shown = weight.sum(1) > 0.5
        moves = torch.diff(centre[shown])
        assert (sign * moves > 0).float().mean() > 0.9, k
    assert bars.movies[:, :, :a].abs().max() == 0  # the background is grey before the sweep
    assert bars.movies.max().item() == pytest.approx(3.0)


def test_bars_that_do_not_fit_the_frame_are_refused(space: stimuli.StimulusSpace) -> None:
    with pytest.raises(stimuli.StimulusError, match="wider than the frame"):
        stimuli.moving_bars(space, width_um=11 * 25)
    with pytest.raises(stimuli.StimulusError, match="pixels per frame"):
        stimuli.moving_bars(space, width_um=50, speed_um_per_s=11 * 25 * 30)
    tiny = stimuli.StimulusSpace.from_data_info(
        {"input_shape": [1, 1, 1], "frame_rate_hz": 30, "pixel_size_um": 5}
    )
    with pytest.raises(stimuli.UnshowableStimulus, match="1×1"):
        stimuli.moving_bars(tiny)
    no_pixel = stimuli.StimulusSpace.from_data_info({"input_shape": [1, 8, 8], "frame_rate_hz": 30})
    with pytest.raises(stimuli.StimulusError, match="pixel size is unknown"):
        stimuli.moving_bars(no_pixel)


def test_drifting_gratings_have_the_asked_frequencies(space: stimuli.StimulusSpace) -> None:
    gratings = stimuli.drifting_gratings(
        space, spatial_frequencies=[1 / 200], temporal_frequencies_hz=[2], directions=2
    )
    assert gratings.movies.shape == (2, 2, 60, 12, 10)
    trace = gratings.movies[0, 0, :, 5, 5].numpy()
    spectrum = np.abs(np.fft.rfft(trace))
    assert np.argmax(spectrum[1:]) + 1 == 4  # 2 Hz over 2 s: 4 cycles
    row = gratings.movies[0, 0, 0, 6].numpy()  # direction 0: the wave runs along columns, period 8 px
    assert np.allclose(row[:2], row[8:10], atol=1e-5)
    degrees = stimuli.drifting_gratings(
        space,
        spatial_frequencies=[0.1],
        unit="cycles_per_degree",
        um_per_degree=31.0,
        directions=1,
        temporal_frequencies_hz=[1],
    )
    assert degrees.conditions[0]["spatial_frequency_cycles_per_um"] == pytest.approx(0.1 / 31)
    with pytest.raises(stimuli.StimulusError, match="um_per_degree"):
        stimuli.drifting_gratings(space, spatial_frequencies=[0.1], unit="cycles_per_degree")
    with pytest.raises(stimuli.StimulusError, match="under 2 pixels"):
        stimuli.drifting_gratings(space, spatial_frequencies=[1 / 25])
    with pytest.raises(stimuli.StimulusError, match="half the frame rate"):
        stimuli.drifting_gratings(space, temporal_frequencies_hz=[15])


def test_flashes_and_noise(space: stimuli.StimulusSpace) -> None:
    flashes = stimuli.flashes(space)
    assert [c["channel"] for c in flashes.conditions] == ["0", "1", "all"]
    a, _b = flashes.segments["increment"]
    assert flashes.movies[0, 0, a].max().item() == pytest.approx(3.0)
    assert flashes.movies[0, 1].abs().max() == 0
    noise = stimuli.dense_noise(space, frames=50, seed=3)
    again = stimuli.dense_noise(space, frames=50, seed=3)
    assert noise.movies.shape == (1, 2, 50, 12, 10)
    assert torch.equal(noise.movies, again.movies)
    assert set(np.unique(noise.movies[0, 0].numpy()).round(4)) == {-3.0, 3.0}
    checks = stimuli.dense_noise(space, frames=5, check_um=50)
    assert torch.equal(checks.movies[..., 0, 0], checks.movies[..., 1, 1])


def test_direction_tuning_of_a_cosine_tuned_neuron() -> None:
    directions = np.arange(8) * 45.0
    preferred = np.array([30.0, 200.0, 0.0])
    strength = np.array([0.5, 0.2, 0.0])
    r = 1 + strength[:, None] * np.cos(np.deg2rad(directions[None] - preferred[:, None]))
    tuned = indices.direction_tuning(r, directions)
    assert tuned.preferred_direction_deg[:2] == pytest.approx([30.0, 200.0], abs=1e-6)
    assert tuned.dsi == pytest.approx(strength / 2, abs=1e-9)  # |Σ (1 + s cos) e^{iθ}| / Σ = s/2
    assert tuned.osi == pytest.approx([0, 0, 0], abs=1e-9)
    bidirectional = 1 + np.cos(2 * np.deg2rad(directions - 60.0))[None]
    assert indices.direction_tuning(bidirectional, directions).preferred_orientation_deg[0] == pytest.approx(
        60.0
    )
    p = indices.direction_p_value(np.vstack([r[:1] ** 8, np.ones((1, 8)) + 1e-3 * np.arange(8)]), directions)
    assert p[0] < 0.05 < p[1]
    with pytest.raises(ValueError, match="non-negative"):
        indices.direction_tuning(-r, directions)


def test_a_neuron_the_bars_mostly_suppress_is_not_called_selective() -> None:
    """An OFF cell under a bright bar: a deep dip while the bar covers its centre and small bumps
    above its baseline from the surround and the rebound; the bumps alone would look selective."""
    t = np.arange(40)
    dip = -2.0 * np.exp(-0.5 * ((t - 20) / 3.0) ** 2)
    bump = 0.4 * np.exp(-0.5 * ((t - 30) / 2.0) ** 2)
    suppressed = np.stack([dip + (k == 0) * bump for k in range(8)])  # a bump in one direction only
    excited = np.stack([-dip + 0.1 * dip[::-1] for _ in range(8)])
    found = indices.mostly_excited(np.stack([suppressed, excited]))
    assert found.tolist() == [False, True]
    assert indices.mostly_excited(np.zeros((1, 5))).tolist() == [True]  # silent: no tuning either way


def test_on_off_and_transience_indices() -> None:
    assert indices.on_off_index(np.array([1.0, 0.0, 1.0]), np.array([0.0, 2.0, 1.0])) == pytest.approx(
        [1, -1, 0]
    )
    assert np.isnan(indices.on_off_index(np.array([0.0]), np.array([0.0])))[0]
    t = np.arange(60)
    sustained = np.ones((1, 60))
    transient = np.exp(-t / 3.0)[None]
    values = indices.transience_index(np.vstack([sustained, transient]), np.zeros(2))
    assert values[0] == pytest.approx(0.0)
    assert values[1] > 0.95


def _gaussian_map(
    x0: float, y0: float, s1: float, s2: float, angle: float, k: float, h: int = 16, w: int = 14
):
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    t = math.radians(angle)
    u = (xx - x0) * math.cos(t) - (yy - y0) * math.sin(t)
    v = (xx - x0) * math.sin(t) + (yy - y0) * math.cos(t)
    q = (u / s1) ** 2 + (v / s2) ** 2
    return np.exp(-q / 2) - k * np.exp(-q / 8)


def test_a_gaussian_blob_is_fitted_back() -> None:
    maps = np.stack(
        [_gaussian_map(5.3, 7.2, 2.0, 1.0, 30.0, 0.0), -_gaussian_map(9.0, 4.5, 1.6, 1.6, 0.0, 0.4)]
    )
    fit = receptive_fields.fit_receptive_fields(maps)
    assert fit.x == pytest.approx([5.3, 9.0], abs=0.02)
    assert fit.y == pytest.approx([7.2, 4.5], abs=0.02)
    assert fit.sigma_major[0] == pytest.approx(2.0, rel=0.03)
    assert fit.sigma_minor[0] == pytest.approx(1.0, rel=0.03)
    assert fit.angle_deg[0] == pytest.approx(30.0, abs=1.0)
    assert fit.polarity.tolist() == [1.0, -1.0]
    assert fit.surround_strength[1] == pytest.approx(0.4 * 4, rel=0.05)  # k s² with s = 2
    assert fit.r2.min() > 0.99


def test_the_fit_is_torch_lbfgs_without_importing_torch_dynamo() -> None:
    """The fit's L-BFGS skips the torch._dynamo import (seconds per command) and fits what torch's does."""
    code = (
        "import sys, numpy as np\n"
        "from openretina_models.insilico import receptive_fields as rf\n"
        "rf.fit_receptive_fields(np.random.default_rng(0).normal(size=(2, 9, 9)))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    maps = np.stack(
        [_gaussian_map(5.3, 7.2, 2.0, 1.0, 30.0, 0.1), -_gaussian_map(9.0, 4.5, 1.6, 1.6, 0.0, 0.4)]
    )
    maps = maps + np.random.default_rng(0).normal(scale=0.05, size=maps.shape)
    plain = receptive_fields.fit_receptive_fields(maps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(receptive_fields, "_PlainLBFGS", torch.optim.LBFGS)
        torchs = receptive_fields.fit_receptive_fields(maps)
    for name in ("x", "y", "sigma_major", "sigma_minor", "angle_deg", "surround_strength", "r2"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(torchs, name))


def test_the_model_sta_of_a_linear_neuron_is_its_filter() -> None:
    rng = np.random.default_rng(0)
    stimulus = torch.from_numpy(rng.choice([-1.0, 1.0], size=(1, 4000, 5, 5))).float()
    kernel = torch.zeros(1, 3, 5, 5)
    kernel[0, 1, 2, 3] = 1.0  # responds to pixel (2, 3) one frame earlier
    response = torch.zeros(4000, 1)
    response[1:, 0] = stimulus[0, :-1, 2, 3]
    sta = receptive_fields.spike_triggered_average(stimulus, response, 3)
    assert sta.shape == (1, 1, 3, 5, 5)
    assert sta[0, 0, 1, 2, 3] == pytest.approx(1.0, abs=0.03)
    assert (sta - kernel).abs().max() < 0.06


def test_functional_types_recover_separated_groups_and_ari() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0] * 6, [4.0] * 3 + [0.0] * 3, [0.0] * 3 + [4.0] * 3])
    truth = np.repeat(np.arange(3), 20)
    features = centres[truth] + rng.normal(0, 0.5, (60, 6))
    found = functional_types.functional_types(features)
    assert found.n_types == 3
    assert functional_types.adjusted_rand_index(truth, found.labels) == pytest.approx(1.0)
    assert functional_types.functional_types(features, n_types=2).n_types == 2
    assert abs(functional_types.adjusted_rand_index(truth, rng.permutation(truth))) < 0.1
    rows, cols, table = functional_types.confusion_table(["a", "a", "b"], [1, 1, 0])
    assert rows == ["a", "b"]
    assert cols == [0, 1]
    assert table.tolist() == [[0, 2], [1, 0]]


def test_mixture_starts_fitted_together_end_where_each_would_alone() -> None:
    """The starts of a mixture run as one batch (speed); each start's likelihood and labels are
    exactly those of fitting it on its own, including the starts that stop early."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 4)) + 3.0 * rng.integers(0, 3, 40)[:, None]
    seeds = [11, 12, 13, 14, 15]
    together = functional_types._fit_gmms(x, 3, [np.random.default_rng(s) for s in seeds], 200, 0.03)
    alone = [functional_types._fit_gmms(x, 3, [np.random.default_rng(s)], 200, 0.03) for s in seeds]
    assert together[0].tolist() == [fit[0][0] for fit in alone]
    assert together[1].tolist() == [fit[1][0].tolist() for fit in alone]
    short = functional_types._fit_gmms(x, 3, [np.random.default_rng(s) for s in seeds], 2, 0.03)
    assert not np.array_equal(short[0], together[0])  # the iteration limit holds for the batch too


def test_the_chirp_steps_count_as_much_as_its_sweeps(space: stimuli.StimulusSpace) -> None:
    """Sustained and transient cells whose responses to the sweeps vary in size and shape from cell
    to cell, over 24 of the chirp's 33 s: the types still come from the 3-s light step."""
    chirp = stimuli.chirp(space)
    light = np.asarray(chirp.movies[0, 0, :, 0, 0]) / space.amplitude[0]
    seg = chirp.segments
    rng = np.random.default_rng(0)
    traces = []
    for k in range(20):
        trace = np.zeros(chirp.frames)
        a, b = seg["light_step"]
        decay = np.exp(-np.arange(b - a) / (3.0 if k % 2 else 1e9))  # transient or sustained
        trace[a:b] = decay
        sweeps = slice(seg["frequency_sweep"][0], seg["contrast_sweep"][1])
        trace[sweeps] = rng.uniform(1.0, 2.0) * np.clip(light[sweeps], 0, None) ** rng.uniform(0.5, 3.0)
        traces.append(trace + 0.01 * rng.standard_normal(chirp.frames))
    result = characterisation.Characterisation("s", list(range(20)))
    result.traces["chirp"] = np.stack(traces)[:, None].astype(np.float32)
    result.axes["chirp"] = {
        "frame_rate_hz": chirp.frame_rate_hz,
        "segments": {name: list(span) for name, span in seg.items()},
    }
    features = characterisation.functional_type_features(result)
    found = functional_types.functional_types(features, n_types=2)
    assert functional_types.adjusted_rand_index(np.arange(20) % 2, found.labels) == pytest.approx(1.0)


def test_characterise_a_model_batched_equals_one_neuron_at_a_time(space: stimuli.StimulusSpace) -> None:
    torch.manual_seed(0)
    model = _tiny_model((2, 12, 10), {"s0": 3}, hidden=4)
    model.data_info = DATA_INFO
    sets, skipped = characterisation.make_stimuli(
        space,
        options={
            "noise": {"frames": 300},
            "bars": {"width_um": 100},
            "gratings": {"temporal_frequencies_hz": [2], "directions": 4},
        },
    )
    assert skipped == {}
    every = characterisation.characterise(model, {"s0": None}, space, sets)["s0"]
    one = characterisation.characterise(model, {"s0": [2]}, space, sets)["s0"]
    for column in (
        "on_off_index",
        "dsi",
        "preferred_direction_deg",
        "bars_excite",
        "chirp_preferred_frequency_hz",
    ):
        expected = pytest.approx(every.table[column][2], rel=1e-4, abs=1e-6, nan_ok=True)
        assert one.table[column][0] == expected, column
    # neurons the bars mostly suppress have no direction preference
    quiet = every.table["bars_excite"] == 0
    assert (every.table["dsi"][quiet] == 0).all()
    assert np.isnan(every.table["preferred_direction_deg"][quiet]).all()
    # the fits of all neurons are one L-BFGS problem, so they agree to the fit's precision only
    assert one.table["rf_x_um"][0] == pytest.approx(every.table["rf_x_um"][2], abs=0.05 * 25)
    assert every.traces["chirp"].shape == (3, 1, sets["chirp"].frames)
    assert every.traces["bar_tuning"].shape == (3, 8)
    assert every.traces["grating_tuning"].shape[1:] == (
        len(sets["gratings"].parameters["spatial_frequencies_cycles_per_um"]),
        1,
        4,
    )
    features = characterisation.functional_type_features(every)
    assert features.shape[0] == 3
    assert np.isfinite(features).all()


def test_stimuli_shown_on_several_threads_give_exactly_the_results_of_one(
    space: stimuli.StimulusSpace,
) -> None:
    """Batches shown side by side, the noise analysed first: every value, trace and column order as
    when everything runs in turn on one thread (the command's files must not depend on the cores)."""
    torch.manual_seed(0)
    model = _tiny_model((2, 12, 10), {"s0": 3, "s1": 2}, hidden=4)
    model.data_info = DATA_INFO
    options = {"noise": {"frames": 300}, "bars": {"width_um": 100}, "gratings": {"directions": 4}}
    sets, _ = characterisation.make_stimuli(space, options=options)
    finished: list[str] = []
    with one_thread():
        alone = characterisation.characterise(model, {"s0": None, "s1": [1]}, space, sets, workers=1)
    together = characterisation.characterise(
        model, {"s0": None, "s1": [1]}, space, sets, workers=3,
        progress=lambda name, _: finished.append(name),
    )  # fmt: skip
    assert sorted(finished) == sorted(sets)
    assert model.training  # left as it was given
    for s in ("s0", "s1"):
        assert list(together[s].table) == list(alone[s].table)
        assert list(together[s].traces) == list(alone[s].traces)
        for name, values in alone[s].table.items():
            np.testing.assert_array_equal(together[s].table[name], values, err_msg=name)
        for name, values in alone[s].traces.items():
            np.testing.assert_array_equal(together[s].traces[name], values, err_msg=name)
        assert together[s].axes == alone[s].axes


def test_workers_raise_a_jobs_error_and_restore_the_threads() -> None:
    before = torch.get_num_threads()

    def fails() -> None:
        raise RuntimeError("job failed")

    with OneThreadWorkers(2) as pool:
        assert pool.submit(torch.get_num_threads)() == 1  # each worker runs torch on one thread
        failed = pool.submit(fails)
        with pytest.raises(RuntimeError, match="job failed"):
            failed()
    assert torch.get_num_threads() == before
    with OneThreadWorkers(1) as pool:
        assert pool.submit(torch.get_num_threads)() == before  # one worker: the caller's thread, as it is


def test_unknown_stimulus_and_unshowable_ones() -> None:
    tiny = stimuli.StimulusSpace.from_data_info(
        {"input_shape": [1, 1, 1], "frame_rate_hz": 30, "pixel_size_um": 5}
    )
    with pytest.raises(stimuli.StimulusError, match="Unknown stimulus 'bar'"):
        characterisation.make_stimuli(tiny, ["bar"])
    sets, skipped = characterisation.make_stimuli(tiny, ["chirp", "bars", "gratings"])
    assert list(sets) == ["chirp"]
    assert set(skipped) == {"bars", "gratings"}


def test_channel_gradients_of_many_neurons_at_once_equal_each_neurons_own() -> None:
    """The batched chromatic gradient (one backward pass for all neurons) is each neuron's gradient
    as `chromatic_tuning` computes it, one backward pass per neuron, whatever the batch size."""
    from openretina_models.insilico import analyses

    torch.manual_seed(0)
    model = _tiny_model((2, 6, 5), {"s": 5}, hidden=3).eval()
    movie = torch.randn(2, 7, 6, 5)
    neurons = [4, 0, 2]
    reference = analyses.chromatic_tuning(model, movie, "s", [[1.0], [1.0]], neurons=neurons)
    expected = reference.gradients.reshape(len(neurons), 2)
    for batch_size in (1, 2, 64):
        got = characterisation.channel_gradients(model, movie, "s", neurons, batch_size=batch_size)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert not model.training
