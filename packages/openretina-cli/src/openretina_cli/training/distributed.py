"""Several training processes on one machine: ``trainer=ddp trainer.devices=N``.

Lightning starts ranks 1..N-1 by running the program's command line again, which it cannot
rebuild for a Hydra app behind a subcommand (``openretina train``). So this module starts them
itself, the way ``torchrun`` does: each extra rank is ``python -m openretina_cli.main train`` with
this run's config, overrides and run directory, plus ``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_*`` in
its environment. Lightning sees ``LOCAL_RANK`` and only joins the process group. When processes
were started outside (torchrun, SLURM's srun), nothing is started here.

Each rank trains on its own share of every epoch's batches (``TrainBatches(rank=, world_size=)``);
DDP averages the gradients, which with mean losses equals one process's gradient on the combined
batch. Validation statistics are summed over ranks before correlations are computed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openretina_cli.errors import ConfigError

log = logging.getLogger("openretina")

_RANK_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# How long rank 0 waits for the other ranks to exit after training before stopping them.
EXIT_WAIT_S = 120.0


@dataclass
class LocalWorkers:
    """Ranks 1..N-1 started by this process (rank 0), and the environment to put back afterwards."""

    processes: list[subprocess.Popen[bytes]]
    saved_environment: dict[str, str | None]
    stop_watching: threading.Event = field(default_factory=threading.Event)

    def close(self, succeeded: bool) -> None:
        """Wait for the other ranks (after training) or stop them (after a failure); leave DDP."""
        self.stop_watching.set()
        deadline = time.monotonic() + (EXIT_WAIT_S if succeeded else 0.0)
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _leave_process_group()
        for name, value in self.saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_strategy(trainer: Any, sync_batchnorm: bool) -> None:
    """Refuse multi-process settings that would silently train on the wrong data or crash later."""
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.strategies import DDPStrategy
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    if int(trainer.world_size) <= 1:
        return
    strategy = trainer.strategy
    if isinstance(strategy, DDPStrategy) and isinstance(strategy.launcher, _MultiProcessingLauncher):
        raise ConfigError(
            "trainer.strategy: spawned or forked DDP processes (ddp_spawn, ddp_fork, ddp_notebook) would "
            "all read rank 0's share of the data. Use trainer=ddp (one process per rank)."
        )
    if sync_batchnorm and isinstance(trainer.accelerator, CPUAccelerator):
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm has no CPU kernel). "
            "Set trainer.sync_batchnorm=false for CPU processes."
        )


def start_local_workers(trainer: Any, run_dir: Path) -> LocalWorkers | None:
    """Start the other ranks of a one-machine DDP run; None when there is nothing to start."""
    from lightning.pytorch.strategies import DDPStrategy
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    strategy = trainer.strategy
    processes_here = int(getattr(strategy, "num_processes", 1))
    if (
        not isinstance(strategy, DDPStrategy)
        or not isinstance(strategy.launcher, _SubprocessScriptLauncher)
        or processes_here <= 1
        or "LOCAL_RANK" in os.environ
    ):
        return None
    if int(trainer.num_nodes) > 1:
        raise ConfigError(
            f"trainer.num_nodes={trainer.num_nodes}: a run over several machines must be started on each "
            "of them by a launcher (SLURM: hydra/launcher=slurm, or torchrun); openretina starts only "
            "the processes of one machine."
        )
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    world_size = processes_here
    saved = {name: os.environ.get(name) for name in _RANK_VARIABLES}
    os.environ.update(
        MASTER_ADDR=os.environ.get("MASTER_ADDR", "127.0.0.1"),
        MASTER_PORT=str(find_free_network_port()),
        NODE_RANK="0",
        WORLD_SIZE=str(world_size),
        LOCAL_RANK="0",
    )
    command, cwd = rank_command(run_dir)
    processes = []
    try:
        for rank in range(1, world_size):
            environment = {**os.environ, "LOCAL_RANK": str(rank)}
            rank_command_line = [*command, f"hydra.job.name=train_rank{rank}"]
            processes.append(subprocess.Popen(rank_command_line, env=environment, cwd=cwd))
    except OSError:
        workers = LocalWorkers(processes, saved)
        workers.close(succeeded=False)
        raise
    workers = LocalWorkers(processes, saved)
    _watch(workers)
    log.info("DDP: started ranks 1..%d as %s", world_size - 1, " ".join(command))
    return workers


def rank_command(run_dir: Path) -> tuple[list[str], str]:
    """The command line of another rank of this Hydra job (same config, overrides and run dir)."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    config_dir = next(
        (str(source.path) for source in hydra.runtime.config_sources if source.provider == "main"),
        None,
    )
    command = [sys.executable, "-m", "openretina_cli.main", "train"]
    if config_dir is not None:
        command += ["--config-path", config_dir]
    command += ["--config-name", str(hydra.job.config_name)]
    command += [str(override) for override in hydra.overrides.task]
    command += [f"hydra.run.dir={_quoted(run_dir)}", "hydra.output_subdir=null"]
    return command, str(hydra.runtime.cwd)


def _quoted(path: Path) -> str:
    text = str(path).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _watch(workers: LocalWorkers) -> None:
    """Stop the whole run when another rank dies: rank 0 would otherwise wait for it forever."""

    def watch() -> None:
        while not workers.stop_watching.wait(1.0):
            for process in workers.processes:
                code = process.poll()
                if code is not None and code != 0:
                    log.error(
                        "DDP: rank process %d exited with code %d; stopping the run.", process.pid, code
                    )
                    for other in workers.processes:
                        if other.poll() is None:
                            other.kill()
                    os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="openretina-ddp-watch", daemon=True).start()
