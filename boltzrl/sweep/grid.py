"""The grid of a sweep: which runs it holds, where each lives, and what each still needs.

A run lives in DIR/{algo}/{env}/{variant}/seed{S}, where `variant` names the preset and every `--set` value
("default" when there are none). What a run folder needs is read from the folder itself, so a sweep that is
killed and started again picks up exactly where it was:

    complete  summary.json says complete and the run was trained to at least the requested steps: skip
    extend    complete, but for fewer steps than requested: resume with the larger --steps
    resume    config.json and a checkpoint: resume from the checkpoint
    restart   config.json but no checkpoint (stopped before its first one): clear the folder, start again
    fresh     nothing there yet
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boltzrl.training.run_folder import RunFolder

MANIFEST = "sweep.json"
LOG_NAME = "sweep.log"
LOCK_NAME = ".sweep.lock"
# Flags the sweep sets itself; --set may not change them.
RESERVED = {"algo", "env", "seed", "steps", "out", "preset", "resume"}
# train fields that do not make a run another run: a sweep extends steps, and where a run logs is not what it learns
UNCOMPARED = ("steps", "wandb_project")


@dataclass(frozen=True)
class Run:
    algo: str
    env: str
    seed: int
    steps: int
    preset: str | None
    overrides: tuple[tuple[str, Any], ...]
    """(field, value) pairs from --set, in the order given."""
    variant: str
    path: str
    expected: dict
    """The config.json entries this run must have: {"preset", "agent", "train"} (train without UNCOMPARED)."""

    @property
    def name(self) -> str:
        return f"{self.algo} {self.env} {self.variant} seed{self.seed}"

    def fresh_args(self) -> list[str]:
        """`boltzrl train` arguments that start this run."""
        args = ["--algo", self.algo, "--env", self.env, "--seed", str(self.seed), "--steps", str(self.steps),
                "--out", self.path]
        if self.preset:
            args += ["--preset", self.preset]
        from boltzrl.options import tokens

        for key, value in self.overrides:
            args += tokens(key, value)
        return args

    def resume_args(self) -> list[str]:
        return ["--out", self.path, "--resume", "--steps", str(self.steps)]


# --set parsing --------------------------------------------------------------------------------------------
def parse_set(items: list[str]) -> list[tuple[str, list[str]]]:
    """["critic_hidden=64x64,256x256", "actor_lr=1e-3"] -> [("critic_hidden", ["64x64", "256x256"]),
    ("actor_lr", ["1e-3"])]; each value is read later by the parser of `boltzrl train` (see build_grid)."""
    parsed, seen = [], set()
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values.strip():
            raise ValueError(f"--set expects key=value[,value...], got {item!r}.")
        if key in RESERVED:
            raise ValueError(f"--set cannot change {key!r}; use the sweep's own --{key} option.")
        if key in seen:
            raise ValueError(f"--set gives {key!r} twice; list all its values in one key=v1,v2.")
        seen.add(key)
        parsed.append((key, [v.strip() for v in values.split(",")]))
    return parsed


def _type_name(annotation) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def format_value(value: Any) -> str:
    """The text of a value in a folder name: tuples as 64x64, floats in their shortest form."""
    if isinstance(value, tuple):
        return "x".join(format_value(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def variant_name(preset: str | None, overrides: tuple[tuple[str, Any], ...]) -> str:
    parts = ([f"preset={preset}"] if preset else []) + [f"{k}={format_value(v)}" for k, v in overrides]
    return ",".join(parts) or "default"


# building the grid ----------------------------------------------------------------------------------------
def _field_names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def build_grid(algos: list[str], envs: list[str], seeds: list[int], steps: int, out: str | Path,
               preset: str | None = None, sets: list[str] | None = None) -> list[Run]:
    """Every run of algos x envs x (--set values) x seeds, validated against the config classes.

    Each --set value is read by the parser of `boltzrl train` (boltzrl.options), so it means what the same text
    means on that command line. Seeds vary slowest, so every configuration gets its first seed before any gets its
    second one.
    """
    from boltzrl import options
    from boltzrl.agents import get_algo
    from boltzrl.training import TrainConfig
    from boltzrl.training.config import check_field_ranges

    if steps <= 0:
        raise ValueError(f"--steps must be positive, got {steps}.")
    for name, values in (("--algos", algos), ("--envs", envs), ("--seeds", seeds)):
        if not values:
            raise ValueError(f"{name} needs at least one value.")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} lists a value twice.")
    specs = {algo: get_algo(algo) for algo in algos}
    train_types = _field_names(TrainConfig)
    parsed = parse_set(sets or [])
    value_lists = []
    for key, texts in parsed:
        owners = [a for a, s in specs.items() if key in _field_names(s.config_cls)]
        if key not in train_types and len(owners) != len(specs):
            if not owners:
                fields = sorted(train_types.union(*(_field_names(s.config_cls) for s in specs.values())) - RESERVED)
                raise ValueError(f"--set {key}: no such option of `boltzrl train` for {', '.join(algos)}; "
                                 f"valid: {', '.join(fields)}.")
            raise ValueError(f"--set {key} is an option of {', '.join(owners)} only; sweep the other algorithms "
                             f"separately.")
        agent_cls = specs[owners[0] if owners else algos[0]].config_cls
        values = []
        for text in texts:
            try:
                values.append(options.parse_text(agent_cls, key, text))
            except options.OptionError:
                annotation = options.annotation(agent_cls, key)
                raise ValueError(f"--set {key}: cannot read {text!r} as {_type_name(annotation)}.") from None
        value_lists.append(values)

    runs = []
    combos = list(itertools.product(*value_lists))
    for seed in seeds:
        for algo, env, combo in itertools.product(algos, envs, combos):
            spec = specs[algo]
            overrides = tuple((key, value) for (key, _), value in zip(parsed, combo))
            preset_obj = spec.preset(preset) if preset else None
            train_over = {k: v for k, v in overrides if k in train_types}
            agent_over = {k: v for k, v in overrides if k not in train_types}
            agent_cfg = spec.config(preset, **agent_over)
            check_field_ranges(agent_cfg)  # refused before any run starts, not in each run
            train_cfg = TrainConfig(**{**(preset_obj.train if preset_obj else {}), **train_over,
                                       "env": env, "seed": seed, "steps": steps})
            train_cfg.validate()
            variant = variant_name(preset, overrides)
            path = Path(out) / algo / env.replace("/", "_") / variant / f"seed{seed}"
            train_dict = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in UNCOMPARED}
            expected = _jsonable({"preset": preset, "agent": dataclasses.asdict(agent_cfg), "train": train_dict})
            runs.append(Run(algo, env, seed, steps, preset, overrides, variant, str(path), expected))
    return runs


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=list))


# run folder state -----------------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def mismatch(run: Run) -> str | None:
    """Why the folder's existing run is not this run (different settings), or None when it is (or is empty)."""
    config = _read_json(Path(run.path) / "config.json")
    if config is None:
        return None
    found = {"preset": config.get("preset"), "agent": config.get("agent"),
             "train": {k: v for k, v in (config.get("train") or {}).items() if k not in UNCOMPARED}}
    if config.get("algo") != run.algo:
        return f"it holds a {config.get('algo')} run"
    for section in ("preset", "agent", "train"):
        want, have = run.expected[section], found[section]
        if isinstance(want, dict) and isinstance(have, dict):
            diffs = [k for k in sorted(set(want) | set(have)) if want.get(k) != have.get(k)]
            if diffs:
                k = diffs[0]
                return f"its {k} is {have.get(k)!r}, this sweep's is {want.get(k)!r}"
        elif want != have:
            return f"its {section} is {have!r}, this sweep's is {want!r}"
    return None


def run_state(run: Run) -> str:
    """One of complete, extend, resume, restart, fresh (see the module docstring)."""
    folder = Path(run.path)
    config = _read_json(folder / "config.json")
    if config is None:
        return "fresh"
    summary = _read_json(folder / "summary.json") or {}
    if summary.get("complete"):
        return "complete" if config["train"]["steps"] >= run.steps else "extend"
    if RunFolder(folder).has_checkpoint():  # also recovers a checkpoint left mid-swap by a kill
        return "resume"
    return "restart"


def prepare(run: Run, state: str) -> list[str]:
    """Make the folder ready for `state` and return the `boltzrl train` arguments that continue the run."""
    folder = Path(run.path)
    if state in ("resume", "extend"):
        return run.resume_args()
    if state == "restart":
        for child in folder.iterdir():
            if child.name not in (LOG_NAME, LOCK_NAME):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    return run.fresh_args()


def env_step_reached(run: Run) -> int:
    """The env step of the run's checkpoint (0 when it has none)."""
    loop = _read_json(Path(run.path) / "checkpoint" / "loop.json") or {}
    return int(loop.get("env_steps", 0))


def final_eval(run: Run) -> float | None:
    return (_read_json(Path(run.path) / "summary.json") or {}).get("final_eval_return")


# manifest ---------------------------------------------------------------------------------------------------
def write_manifest(out: str | Path, runs: list[Run], command: list[str]) -> None:
    """DIR/sweep.json: every run this folder's sweeps asked for (merged over invocations), for `boltzrl report`."""
    from boltzrl.training.run_folder import write_json

    path = Path(out) / MANIFEST
    previous = _read_json(path) or {}
    entries = {e["path"]: e for e in previous.get("runs", [])}
    for run in runs:
        rel = os.path.relpath(run.path, out)
        entries[rel] = {"path": rel, "algo": run.algo, "env": run.env, "seed": run.seed, "steps": run.steps,
                        "variant": run.variant}
    commands = previous.get("commands", []) + [command]
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(path, {"runs": sorted(entries.values(), key=lambda e: e["path"]), "commands": commands})
