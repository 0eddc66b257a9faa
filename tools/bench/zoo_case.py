"""The `zoo` benchmark case: each tool's default config on every retina-zoo member, one budget each.

Per member: the data is generated once (ours `create-data --kind retina` with the member's
options; 1.x reads a view with the trial mean, as in the quality case), then ours and 1.1.1
alternate run by run, each trained with only the data options for `--zoo-budget-s` seconds
(trainer.max_time; early stopping as configured). Both are scored the same way on the whole test
movie: the mean per-neuron correlation with the trial mean, and its fraction of the ceiling.
"""

from __future__ import annotations

from collections.abc import Iterator

import cases
import datasets
from report import CaseResult, Target
from stats import interleaved_order
from zoo import MEMBERS, Member

ZOO_METRICS = [
    "fraction_of_ceiling",
    "test_correlation",
    "ceiling",
    "epochs",
    "fit_s",
    "wall_s",
    "peak_rss_mib",
]

TARGETS = [
    Target(f"zoo/{m.name}", "fraction_of_ceiling", at_least=0.9, on="ours", source="issue 14: ≥ 0.9")
    for m in MEMBERS
]


def _overrides(member: Member, data_dir: str, shape: tuple[int, int, int, int], budget_s: int) -> list[str]:
    c, _, h, w = shape
    return [
        f"paths.data_dir={data_dir}",
        f"data_io.test_names=[{cases.RETINA_TEST}]",
        f"data_io.color_channels={c}",
        f"data_io.video_height={h}",
        f"data_io.video_width={w}",
        "trainer.max_epochs=10000",
        f"+trainer.max_time={cases._budget(budget_s)}",
    ]


def zoo(ctx: cases.Context) -> Iterator[CaseResult]:
    """One CaseResult per member (`zoo/<name>`), saved after each member."""
    for member in ctx.zoo_members or list(MEMBERS):
        data = datasets.ours_retina(ctx.data_root, f"zoo-{member.name}", member.cli_options())
        view = cases.peer_view(data, ctx.data_root / f"zoo-{member.name}-1x-view")
        shape = cases._stimulus_shape(data)
        case = CaseResult(
            f"zoo/{member.name}",
            f"{member.stands_for}; ours: {member.config}, 1.1.1: hdf5_core_readout; "
            f"{ctx.zoo_budget_s} s of training each",
            ZOO_METRICS,
        )
        for pair, tool in interleaved_order(ctx.pairs):
            if tool not in ctx.zoo_tools:
                continue
            config = member.config if tool == "ours" else "hdf5_core_readout"
            overrides = _overrides(member, str(data if tool == "ours" else view), shape, ctx.zoo_budget_s)
            if tool == "ours":
                overrides += ctx.zoo_overrides
            tag = f"zoo/{member.name}/{tool}-{pair}"
            metrics, run_dir = cases.train_run(ctx, tool, tag, config, overrides)
            if run_dir is not None:
                out = ctx.run_root / tag / "test_predictions.npz"
                if cases._predict_test(ctx, tool, run_dir, data, out):
                    metrics.update(cases.score_predictions(out, data))
            cases._record(case, pair, tool, metrics)
            print(
                f"  {tag}: fraction of ceiling {metrics.get('fraction_of_ceiling', float('nan')):.3f}",
                flush=True,
            )
        if ctx.zoo_overrides:
            case.notes.append(f"ours with the overrides {' '.join(ctx.zoo_overrides)}")
        if "peer" not in ctx.zoo_tools:
            case.notes.append("1.1.1 not run in this invocation (--zoo-tools ours)")
        yield case
