"""A figure and a short video per optimised stimulus.

The figure shows, per colour channel, the spatial map at the peak frame (the frame of most
energy), the temporal trace at the peak pixel and that trace's amplitude spectrum. Pixels are
named (x, y), x the column and y the row from the top, as everywhere in openretina's figures. The
video shows every frame, channels side by side under their names, with the time and a colour bar:
an mp4 when the ``video`` extra is installed (``pip install "openretina-cli[video]"``: imageio and
its ffmpeg plugin), otherwise a GIF written with Pillow (which matplotlib always brings), so it
never fails for want of an encoder. matplotlib draws on the Agg canvas and is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from openretina_cli.evaluation.cards import peak

DPI = 150
VIDEO_SCALE = 12  # screen pixels per stimulus pixel
GAP = 12  # pixels between channel panels in a video frame
HEADER = 40  # pixels above the panels (time, channel names)
FOOTER = 44  # pixels below the panels (colour bar)
MIN_PANEL = 96  # smallest panel width in pixels, so names and numbers fit
STIMULUS_UNITS = "stimulus (normalised units)"


def _stem(entry: dict[str, Any]) -> str:
    tensor = str(entry["tensor"]).replace("/", "_").replace(" ", "_")
    if "neuron" in entry:
        return f"{tensor}_neuron_{entry['neuron']:04d}"
    if "channel" in entry:
        return f"{tensor}_channel_{entry['channel']:03d}"
    return f"{tensor}_cluster_{entry['index']:03d}"


def _title(entry: dict[str, Any]) -> str:
    if "neuron" in entry:
        what = f"{entry['tensor']} neuron {entry['neuron']} (id {entry['neuron_id']})"
    elif "channel" in entry:
        what = f"{entry['tensor']} channel {entry['channel']}"
    else:
        what = f"{entry['tensor']} group {entry['cluster']!r}"
    return f"{what}: objective {entry['objective']:.3g} (start {entry['start_objective']:.3g})"


def draw_target(
    out: Path, entry: dict[str, Any], stimulus: np.ndarray, names: list[str], frame_rate_hz: float | None
) -> dict[str, str]:
    """Write the figure and the video of one stimulus (C, T, H, W); return their paths under `out`."""
    stem = _stem(entry)
    (out / "figures").mkdir(exist_ok=True)
    (out / "videos").mkdir(exist_ok=True)
    figure = Path("figures") / f"{stem}.png"
    draw_figure(out / figure, stimulus, names, frame_rate_hz, _title(entry))
    video = write_video(
        out / "videos" / stem, stimulus, frame_rate_hz or 30.0, names, frame_rate_hz is not None
    )
    return {"figure": str(figure), "video": str(video.relative_to(out))}


def draw_figure(
    path: Path, stimulus: np.ndarray, names: list[str], frame_rate_hz: float | None, title: str
) -> Path:
    channels, frames = stimulus.shape[:2]
    frame, row, column = peak(stimulus)
    limit = float(np.abs(stimulus).max()) or 1.0
    figure = Figure(figsize=(9.0, 2.3 * channels + 0.6), layout="constrained")
    axes = figure.subplots(channels, 3, squeeze=False, gridspec_kw={"width_ratios": [1, 1.6, 1.2]})
    rate = frame_rate_hz or 1.0
    unit = "s" if frame_rate_hz else "frames"
    time = (np.arange(frames) - (frames - 1)) / rate  # 0 = the last frame
    for c in range(channels):
        spatial, trace_ax, spectrum_ax = axes[c]
        image = spatial.imshow(stimulus[c, frame], cmap="RdBu_r", vmin=-limit, vmax=limit)
        spatial.plot([column], [row], marker="+", color="black")
        spatial.set_title(f"{names[c]}: peak frame, t = {time[frame]:.3g} {unit}", fontsize=9)
        spatial.set_xlabel("x (pixels)", fontsize=8)
        spatial.set_ylabel("y (pixels)", fontsize=8)
        spatial.tick_params(labelsize=7)
        figure.colorbar(image, ax=spatial, shrink=0.8).set_label("normalised units", fontsize=7)
        trace = stimulus[c, :, row, column]
        trace_ax.plot(time, trace, color=f"C{c}")
        trace_ax.axvline(time[frame], color="grey", linestyle=":")
        trace_ax.axhline(0.0, color="grey", linewidth=0.5)
        trace_ax.set_ylim(-limit * 1.05, limit * 1.05)
        trace_ax.set_title(f"{names[c]}: time course at pixel (x {column}, y {row})", fontsize=9)
        trace_ax.set_xlabel(f"time ({unit}, 0 = last frame)")
        trace_ax.set_ylabel(STIMULUS_UNITS, fontsize=7)
        spectrum = np.abs(np.fft.rfft(trace - trace.mean()))
        frequencies = np.fft.rfftfreq(frames, d=1.0 / rate)
        spectrum_ax.plot(frequencies, spectrum, color=f"C{c}", marker=".")
        spectrum_ax.set_title(f"{names[c]}: amplitude spectrum", fontsize=9)
        spectrum_ax.set_xlabel("frequency (Hz)" if frame_rate_hz else "frequency (cycles/frame)")
        spectrum_ax.set_ylabel("amplitude (a.u.)", fontsize=7)
    figure.suptitle(title, fontsize=10)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def video_frames(
    stimulus: np.ndarray, names: list[str] | None = None, frame_rate_hz: float | None = None
) -> np.ndarray:
    """(T, rows, columns, 3) uint8: channels side by side under their names, blue-white-red
    around 0, enlarged; the time of each frame above and a colour bar below."""
    from PIL import Image, ImageDraw, ImageFont

    channels, frames, height, width = stimulus.shape
    names = (
        names if names is not None and len(names) == channels else [f"channel {c}" for c in range(channels)]
    )
    limit = float(np.abs(stimulus).max()) or 1.0
    scale = max(VIDEO_SCALE, -(-MIN_PANEL // max(width, 1)))
    colours = colormaps["RdBu_r"]((stimulus / limit + 1.0) / 2.0)[..., :3]  # (C, T, H, W, 3)
    colours = colours.repeat(scale, axis=2).repeat(scale, axis=3)
    h, w = height * scale, width * scale
    total_w = max(channels * (w + GAP) - GAP, 260)
    total_h = HEADER + h + FOOTER
    h_pad, w_pad = total_h + (-total_h) % 16, total_w + (-total_w) % 16  # mp4 encoders want multiples of 16
    canvas = np.ones((frames, h_pad, w_pad, 3))
    for c in range(channels):
        left = c * (w + GAP)
        canvas[:, HEADER : HEADER + h, left : left + w] = colours[c]
    bar_w = min(w_pad - 80, 240)
    bar_left = (w_pad - bar_w) // 2
    bar = colormaps["RdBu_r"](np.linspace(0.0, 1.0, bar_w))[:, :3]
    canvas[:, HEADER + h + 6 : HEADER + h + 16, bar_left : bar_left + bar_w] = bar[None, None]
    pixels = (canvas * 255).round().astype(np.uint8)
    font = ImageFont.load_default(size=13)
    small = ImageFont.load_default(size=11)
    # text that does not change between frames, drawn once
    still = Image.fromarray(pixels[0])
    draw = ImageDraw.Draw(still)
    for c, name in enumerate(names):
        draw.text((c * (w + GAP) + 2, HEADER - 18), name, fill=(0, 0, 0), font=font)
    y = HEADER + h + 19
    draw.text((bar_left, y), f"-{limit:.2g}", fill=(0, 0, 0), font=small, anchor="mt")
    draw.text((bar_left + bar_w // 2, y), "0", fill=(0, 0, 0), font=small, anchor="mt")
    draw.text((bar_left + bar_w, y), f"+{limit:.2g}", fill=(0, 0, 0), font=small, anchor="mt")
    draw.text((w_pad // 2, y + 13), STIMULUS_UNITS, fill=(60, 60, 60), font=small, anchor="mt")
    labelled = np.asarray(still)
    text_rows = np.zeros(pixels.shape[1:3], dtype=bool)
    text_rows[:HEADER] = True
    text_rows[HEADER + h + 16 :] = True
    pixels[:, text_rows] = labelled[text_rows]
    for t in range(frames):
        seconds = (t - (frames - 1)) / frame_rate_hz if frame_rate_hz else None
        stamp = f"t = {seconds:+.3f} s" if seconds is not None else f"frame {t - (frames - 1):+d}"
        image = Image.fromarray(pixels[t])
        ImageDraw.Draw(image).text(
            (2, 2), f"{stamp}  (frame {t + 1} of {frames})", fill=(0, 0, 0), font=small
        )
        pixels[t] = np.asarray(image)
    return pixels


def write_video(
    stem: Path, stimulus: np.ndarray, fps: float, names: list[str] | None = None, timed: bool = True
) -> Path:
    """`stem`.mp4 via imageio's ffmpeg plugin (the ``video`` extra) when it works, else `stem`.gif
    via Pillow."""
    frames = video_frames(stimulus, names, fps if timed else None)
    try:
        import imageio.v2 as imageio

        path = stem.with_suffix(".mp4")
        imageio.mimwrite(path, list(frames), fps=fps, macro_block_size=16)
        return path
    except Exception:  # no imageio, no ffmpeg plugin or binary: fall back to GIF below
        stem.with_suffix(".mp4").unlink(missing_ok=True)
    from PIL import Image

    path = stem.with_suffix(".gif")
    images = [Image.fromarray(frame) for frame in frames]
    duration = max(20, round(1000.0 / fps))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path
