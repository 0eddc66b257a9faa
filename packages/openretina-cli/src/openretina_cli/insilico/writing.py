"""What ``openretina mei`` writes: meis.safetensors (one tensor per group), meis.json (settings and
one entry per target) and, unless --no-figures, a figure and a video per stimulus that is an MEI.

Everything is written into a staging folder and moved into place (`openretina_cli.output_folder`),
so a failure leaves the previous outputs as they were.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openretina_cli.config import model_source
from openretina_cli.insilico.targets import Group, Settings
from openretina_cli.output_folder import OutputFolder, write

MEI_FOLDER = "mei"
MEI_ENTRIES = ("meis.safetensors", "meis.json", "figures", "videos")


def write_meis(
    folder: OutputFolder,
    model: Any,
    source: model_source.ModelSource,
    settings: Settings,
    groups: list[Group],
    results: list[Any],
    figures: bool,
) -> list[str]:
    with write(folder) as staging:
        return _write_into(staging, folder.path, model, source, settings, groups, results, figures)


def _write_into(
    out: Path,
    final: Path,
    model: Any,
    source: model_source.ModelSource,
    settings: Settings,
    groups: list[Group],
    results: list[Any],
    figures: bool,
) -> list[str]:
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    entries: list[dict[str, Any]] = []
    frame_rate = (getattr(model, "data_info", None) or {}).get("frame_rate_hz")
    for group, result in zip(groups, results, strict=True):
        stimuli = result.stimuli.cpu()
        values = result.values.cpu().tolist()
        starts = result.start_values.cpu().tolist()
        iterations = result.iterations
        stalled = result.stalled
        tensors[group.key] = stimuli.contiguous()
        for i, extra in enumerate(group.extra):
            entry = {"tensor": group.key, "index": i, **extra}
            if group.session is not None:
                entry["session"] = group.session
            entry.update(
                objective=values[i],
                start_objective=starts[i],
                iterations=iterations[i],
                constraints=settings.record["constraints"],
            )
            if group.kind == "neuron":
                entry["response"] = values[i]
            if stalled[i]:
                entry["status"] = "failed: did not move from its start, or ended flat (not an MEI)"
            entries.append(entry)
    save_file(tensors, str(out / "meis.safetensors"))
    drawn = 0
    if figures:
        from openretina_cli.evaluation.figures import channel_names
        from openretina_cli.insilico.figures import draw_target

        names = channel_names(int(model.in_shape[0]), getattr(model, "data_info", None))
        for entry in entries:
            if "status" in entry:
                continue
            stimulus = tensors[entry["tensor"]][entry["index"]].numpy()
            entry.update(draw_target(out, entry, stimulus, names, frame_rate))
            drawn += 1
    summary = {
        "model": source.model_path,
        "mode": groups[0].kind if groups else "neuron",
        "units": "the model's normalised stimulus units",
        "settings": settings.record,
        "note": settings.range_note,
        "tensors": {key: list(t.shape) for key, t in tensors.items()},
        "targets": entries,
    }
    (out / "meis.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"Note: {settings.range_note}"] if settings.range_note else []
    for group, result in zip(groups, results, strict=True):
        values = result.values.tolist()
        lines.append(
            f"{group.key}: {len(values)} {group.kind}s, objective {min(values):.3g}..{max(values):.3g}"
        )
    failed = [e for e in entries if "status" in e]
    if failed:
        shown = ", ".join(f"{e['tensor']}[{e['index']}]" for e in failed[:10])
        lines.append(
            f"Warning: {len(failed)} stimuli did not move from their start or ended flat, and are not "
            f"MEIs (marked 'status' in meis.json, not drawn): {shown}{', ...' if len(failed) > 10 else ''}"
        )
    lines.append(
        f"Wrote {final / 'meis.safetensors'}, {final / 'meis.json'}"
        + (f" and {drawn} figures and videos" if drawn else "")
    )
    if any(str(entry.get("video", "")).endswith(".gif") for entry in entries):
        lines.append(
            'Videos are GIFs: for mp4 install the video extra (pip install "openretina-cli[video]", '
            "imageio with its ffmpeg plugin)."
        )
    return lines


def update_run_report(source: model_source.ModelSource, out: Path) -> list[str]:
    """Show the MEIs on the run's report (cards and the grid by cell type) when they were written
    into the run's own mei/ folder and the run has a report."""
    if source.run_dir is None or out.resolve() != (source.run_dir / MEI_FOLDER).resolve():
        return []
    from openretina_cli.evaluation.report import refresh_report

    page = refresh_report(source.run_dir / "eval", out)
    return [] if page is None else [f"Updated the run's report with the MEIs: {page}"]
