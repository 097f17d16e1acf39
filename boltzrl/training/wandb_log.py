"""Optional Weights & Biases mirror of a run's TensorBoard scalars (`boltzrl train --wandb-project NAME`).

The W&B run id is kept in the run folder (wandb.json), so a resumed run goes on logging into the same W&B run.
Points a resumed run logs again (those between its checkpoint and the interruption) have steps W&B has already
seen; W&B drops them, and they hold the same values, since a resumed run repeats its steps exactly."""

from __future__ import annotations

import math
from pathlib import Path

ID_FILE = "wandb.json"
EXTRA = "pip install 'boltzrl[wandb]'"


def require_wandb():
    """The wandb module, or an ImportError that says which extra to install."""
    try:
        import wandb
    except ImportError:
        raise ImportError(f"--wandb-project needs the wandb package, which is not installed: {EXTRA}.") from None
    return wandb


def mirror_for(run_dir: Path) -> WandbMirror | None:
    """The mirror the run in `run_dir` asks for in its config.json (train.wandb_project), or None."""
    from boltzrl.training.run_folder import read_json_file

    config_path = Path(run_dir) / "config.json"
    if not config_path.exists():
        return None
    config = read_json_file(config_path, "run's configuration")
    project = (config.get("train") or {}).get("wandb_project") if isinstance(config, dict) else None
    return WandbMirror(Path(run_dir), project, config) if project else None


class WandbMirror:
    """Sends scalars to one W&B run, the points of one step as one `log` call (W&B wants steps in order)."""

    def __init__(self, run_dir: Path, project: str, config: dict):
        from boltzrl.training.run_folder import read_json_file, write_json

        wandb = require_wandb()
        id_path = run_dir / ID_FILE
        saved = read_json_file(id_path, "W&B run record").get("id") if id_path.exists() else None
        try:
            self.run = wandb.init(project=project, id=saved, resume="allow" if saved else None, config=config,
                                  name=run_dir.name, dir=str(run_dir))
        except Exception as exc:  # wandb raises its own errors for logins, networks and settings
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ValueError(f"W&B could not start a run in project {project!r} ({detail}); the run can continue "
                             f"with --resume once that is fixed, or without W&B with --wandb-project ''.") from None
        if saved is None:
            write_json(id_path, {"id": self.run.id, "project": project})
        self.step: int | None = None
        self.pending: dict[str, float] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if step != self.step:
            self.flush()
            self.step = step
        if not math.isnan(value):
            self.pending[tag] = value

    def flush(self) -> None:
        if self.pending:
            self.run.log(self.pending, step=self.step)
            self.pending = {}

    def close(self) -> None:
        self.flush()
        self.run.finish()
