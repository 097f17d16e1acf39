"""The `boltzrl` command: train, eval, list, and the sampling, sweep and report tools.

Every user error ends with one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from datetime import datetime
from pathlib import Path

USAGE = """usage: boltzrl COMMAND [ARGS]

commands:
  train    train an agent (boltzrl train --algo sac --env cheetah-run --steps 100000)
  eval     evaluate a run folder or checkpoint (boltzrl eval runs/NAME --episodes 10)
  list     algorithms with their presets, environments, energies and sampling methods
  sample   Boltzmann sampling of toy energies with RSSM, iDEM, DSM and Langevin
  sweep    a grid of runs over algorithms x environments x seeds
  report   tables and figures of a folder of runs beside the papers' numbers

Run `boltzrl COMMAND --help` for the options of a command."""


class UserError(Exception):
    """An error caused by the user's input; printed as one line."""


def cmd_train(argv: list[str]) -> int:
    from boltzrl import options
    from boltzrl.agents import get_algo
    from boltzrl.training import Diverged, Interrupted, TrainConfig, config_from_dict, train
    from boltzrl.training.config import refuse_conflicts, resume_conflicts
    from boltzrl.training.run_folder import RunFolder

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo", default=None)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--out", default=None)
    pre.add_argument("--resume", action="store_true")
    known, _ = pre.parse_known_args(argv)
    config_file, argv = _take_config(argv)

    if config_file is not None:
        # A saved run's settings are the defaults of a new run, so the flags given override them.
        if known.resume:
            raise UserError("--config starts a new run from a saved configuration and --resume continues the run "
                            "in --out; give one of them.")
        spec, agent_cfg, train_cfg, saved_preset = _read_config_file(config_file)
        if known.algo is not None and get_algo(known.algo).name != spec.name:
            raise UserError(f"--algo {known.algo} contradicts {config_file}, a {spec.name} run; drop --algo or "
                            f"--config.")
        if known.preset is not None and known.preset != saved_preset:
            raise UserError(f"--preset {known.preset} cannot be applied on top of {config_file}, whose values "
                            f"already include its preset ({saved_preset}); set the options to change as flags.")
        known.preset = saved_preset
    elif known.resume:
        # The saved run's values are the defaults, so only the flags given can differ from them; train() refuses
        # those that cannot change mid-run before it touches the folder. --algo is checked here, before another
        # algorithm's options would be read as unknown ones.
        if not known.out:
            raise UserError("--resume needs --out, the run folder to continue.")
        folder = RunFolder(known.out)
        if not folder.has_run():
            raise UserError(f"Nothing to resume in {known.out}: it has no config.json.")
        saved = folder.read_config()
        spec, agent_cfg, train_cfg = config_from_dict(saved, folder.config_path)
        if known.algo is not None:
            refuse_conflicts(folder.path, resume_conflicts(spec.name, None, None, None, get_algo(known.algo).name))
        known.preset = known.preset or saved["preset"]
    else:
        spec = get_algo(known.algo or "sac")
        preset = spec.preset(known.preset) if known.preset else None
        agent_cfg = spec.config(known.preset)
        train_cfg = TrainConfig(**(preset.train if preset else {}))

    defaults = {"algo": spec.name, "preset": known.preset, "out": known.out, "resume": known.resume,
                **dataclasses.asdict(train_cfg), **dataclasses.asdict(agent_cfg)}
    args = options.parse_args(spec.config_cls, argv, defaults)
    agent_cfg, train_cfg = options.split(spec.config_cls, args)
    out = args.out or str(Path("runs") / f"{spec.name}-{train_cfg.env.replace('/', '_')}-seed{train_cfg.seed}-"
                                         f"{datetime.now():%Y%m%d-%H%M%S}")
    try:
        summary = train(spec.name, agent_cfg, train_cfg, out, preset=args.preset, resume=args.resume)
    except Interrupted as exc:
        print(f"boltzrl: {exc}", file=sys.stderr)
        return 130
    except Diverged as exc:
        print(f"boltzrl: error: {exc}", file=sys.stderr)
        return 1
    print(f"run folder: {out}")
    print(f"final eval return {summary['final_eval_return']:.2f} (best {summary['best_eval_return']:.2f}) after "
          f"{summary['env_steps']} env steps, {summary['env_steps_per_s']:.1f} steps/s")
    return 0


def _take_config(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the value of --config, the other arguments): the file's values become defaults, not an option."""
    rest, value, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise UserError("--config needs a file: a run's config.json (or the run folder).")
            value, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return value, rest


def _read_config_file(path: str):
    """(algo spec, agent config, train config, preset) of a saved config.json, or of a run folder's."""
    from boltzrl.training import config_from_dict
    from boltzrl.training.run_folder import read_json_file

    file = Path(path)
    if file.is_dir():
        file = file / "config.json"
    if not file.is_file():
        raise UserError(f"--config {path}: no such file; give a run's config.json (or the run folder).")
    saved = read_json_file(file, "configuration")
    spec, agent_cfg, train_cfg = config_from_dict(saved, file)
    return spec, agent_cfg, train_cfg, saved.get("preset")


def cmd_eval(argv: list[str]) -> int:
    from boltzrl.training.evaluate_run import evaluate_run, run_folder_of
    from boltzrl.video import VIDEO_EPISODES, require_writer

    parser = argparse.ArgumentParser(prog="boltzrl eval", description="Evaluate a run folder's latest checkpoint.")
    parser.add_argument("run", help="run folder (or its checkpoint folder)")
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes")
    parser.add_argument("--video", action="store_true",
                        help=f"also write MP4s of the first {VIDEO_EPISODES} episodes (needs pip install "
                             f"'boltzrl[video]')")
    parser.add_argument("--video-dir", default=None, help="folder of the videos (default: RUN/videos; implies --video)")
    args = parser.parse_args(argv)
    if args.episodes <= 0:
        raise UserError(f"--episodes must be positive, got {args.episodes}.")
    video_dir = None
    if args.video or args.video_dir:
        try:
            require_writer()
        except ImportError as exc:
            raise UserError(str(exc)) from None
        video_dir = args.video_dir or run_folder_of(args.run).path / "videos"
    result = evaluate_run(args.run, args.episodes, args.seed, video_dir=video_dir)
    print(f"eval return {result['eval_return']:.2f} ± {result['eval_return_std']:.2f} over {args.episodes} episodes "
          f"(mean length {result['eval_length']:.0f})")
    for path in result.get("videos", []):
        print(f"video: {path}")
    return 0


def cmd_list(argv: list[str]) -> int:
    from boltzrl.agents import ALGOS
    from boltzrl.envs import list_env_ids

    print("algorithms (--algo) and presets (--preset):")
    for name, spec in ALGOS.items():
        print(f"  {name:8s} {spec.description}")
        if spec.evaluation:
            print(f"      (evaluation: {spec.evaluation})")
        for preset_name, preset in spec.presets.items():
            print(f"      {preset_name:10s} {preset.description}")
    print("\nenvironments (--env):")
    for group, ids in list_env_ids().items():
        print(f"  {group}: {', '.join(ids)}")
    try:
        from boltzrl.sampling import list_energies, list_methods
    except ImportError:
        return 0
    print("\nenergies (boltzrl sample --energy):", ", ".join(list_energies()))
    print("sampling methods (boltzrl sample --method):", ", ".join(list_methods()))
    return 0


def _delegate(module: str):
    def run(argv: list[str]) -> int:
        import importlib

        return importlib.import_module(module).main(argv)

    return run


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "list": cmd_list,
    "sample": _delegate("boltzrl.sampling.cli"),
    "sweep": _delegate("boltzrl.sweep.cli"),
    "report": _delegate("boltzrl.results.cli"),
}


def main(argv: list[str] | None = None) -> int:
    try:
        return _run_command(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:  # the reader of our output left (`boltzrl list | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the flush at exit cannot fail again
        return 141


def _run_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; commands: {', '.join(COMMANDS)}."
        print(f"boltzrl: error: unknown command {command!r}{hint}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](rest)
    except (UserError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"boltzrl: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as exc:  # the file system refused something the run folder needs
        where = f": {exc.filename}" if exc.filename else ""
        print(f"boltzrl: error: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"boltzrl: error: {exc}. Install the optional extra that provides it (see README).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("boltzrl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
