"""`boltzrl sweep`: a grid of algorithms x environments x seeds (x --set values), one run folder each.

Re-running the same command skips finished runs and resumes the others from their checkpoints, so a sweep that
was killed (or whose machine went away) is finished by starting it again.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from boltzrl.sweep.grid import build_grid, env_step_reached, final_eval, mismatch, run_state, write_manifest
from boltzrl.training.progress import format_duration

STATE_TEXT = {"fresh": "new", "restart": "restarted: it stopped before its first checkpoint",
              "resume": "resumed", "extend": "extended to more steps"}


class Tally:
    """One line per run event, with the running counts."""

    def __init__(self, total: int, stream=None):
        self.total, self.stream = total, stream or sys.stdout
        self.running = self.finished_n = self.skipped_n = self.failed_n = 0

    def _line(self, text: str) -> None:
        done = self.finished_n + self.skipped_n + self.failed_n
        print(f"[{done}/{self.total}] {text}  ({self.running} in progress, {self.finished_n} finished, "
              f"{self.skipped_n} skipped, {self.failed_n} failed)", file=self.stream, flush=True)

    def started(self, run, state, cores=None) -> None:
        self.running += 1
        detail = STATE_TEXT[state]
        if state in ("resume", "extend"):
            detail += f" from step {env_step_reached(run):,}"
        where = f" on cores {','.join(map(str, cores))}" if cores else ""
        self._line(f"started  {run.name} ({detail}){where}")

    def submitted(self, run) -> None:
        self.running += 1
        self._line(f"queued   {run.name}")

    def finished(self, run, seconds: float, detail: str = "") -> None:
        self.running -= 1
        self.finished_n += 1
        value = final_eval(run)
        result = f"final eval {value:.2f}" if value is not None else "no evaluation"
        self._line(f"finished {run.name} in {format_duration(seconds)}: {result}" + (f" ({detail})" if detail else ""))

    def skipped(self, run, reason: str) -> None:
        self.skipped_n += 1
        self._line(f"skipped  {run.name} ({reason})")

    def failed(self, run, code, tail: str) -> None:
        self.running -= 1
        self.failed_n += 1
        self._line(f"FAILED   {run.name} (exit {code}): {tail or 'no output'}; log: {run.path}/sweep.log")

    def waiting(self, run) -> None:
        self._line(f"waiting  {run.name}: another process is training it")

    def interrupted(self, runs) -> None:
        print(f"sweep: stopping {len(runs)} running run(s); each saves a checkpoint", file=self.stream, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="boltzrl sweep", description=__doc__.splitlines()[0],
                                epilog="example: boltzrl sweep --algos sac td3 --envs Pendulum-v1 cheetah-run "
                                       "--seeds 0 1 2 --steps 100000 --out runs/sweep --workers 2 "
                                       "--set critic_hidden=64x64,256x256")
    p.add_argument("--algos", nargs="+", required=True, help="algorithms (see `boltzrl list`)")
    p.add_argument("--envs", nargs="+", required=True, help="environment ids")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default: 0)")
    p.add_argument("--steps", type=int, required=True, help="environment steps of every run")
    p.add_argument("--out", required=True, help="sweep folder; runs go to OUT/ALGO/ENV/VARIANT/seedS")
    p.add_argument("--preset", default=None, help="preset of every algorithm")
    p.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=V1,V2",
                   help="option of `boltzrl train` and its values to sweep, each read as that option's value "
                        "on the train command line (tuples as 64x64 or '64 64', booleans as true/false)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: subprocesses on this machine (default); ray: one Ray task per run")
    p.add_argument("--workers", type=int, default=1, help="local: runs at once (default 1)")
    p.add_argument("--threads-per-worker", type=int, default=None,
                   help="local: cores per run (default: usable cores / workers; 0: no pinning or caps)")
    p.add_argument("--ray-address", default=None,
                   help="ray: cluster address (auto, ray://HEAD:10001); default: a new local Ray instance")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs each run asks for (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="ray: GPUs each run asks for (e.g. 1, 0.5)")
    p.add_argument("--dry-run", action="store_true", help="print every run and what it needs, start nothing")
    return p.parse_args(argv)


def _check_envs(envs: list[str]) -> None:
    """Build each environment once, so a misspelt id fails before any run starts."""
    from boltzrl.envs import make_env

    for env_id in envs:
        make_env(env_id).close()


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.workers <= 0:
        raise ValueError(f"--workers must be positive, got {args.workers}.")
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // args.workers) if args.threads_per_worker is None else args.threads_per_worker
    if threads < 0:
        raise ValueError(f"--threads-per-worker must be non-negative, got {threads}.")
    if args.backend == "ray" and (args.cpus_per_run <= 0 or args.gpus_per_run < 0):
        raise ValueError("--cpus-per-run must be positive and --gpus-per-run non-negative.")

    runs = build_grid(args.algos, args.envs, args.seeds, args.steps, args.out, args.preset, args.sets)
    clashes = [(run, why) for run in runs if (why := mismatch(run))]
    if clashes:
        run, why = clashes[0]
        raise ValueError(f"{run.path} holds a different run ({why}; {len(clashes)} such folder(s)); "
                         f"choose another --out or remove them.")
    _check_envs(args.envs)
    states = [run_state(run) for run in runs]
    counts = {s: states.count(s) for s in ("complete", "extend", "resume", "restart", "fresh")}
    variants = len({run.variant for run in runs})
    print(f"sweep: {len(runs)} runs ({len(args.algos)} algorithms x {len(args.envs)} envs x {variants} variants x "
          f"{len(args.seeds)} seeds) in {args.out}: {counts['complete']} complete, "
          f"{counts['resume'] + counts['extend']} to resume, {counts['fresh'] + counts['restart']} to start",
          flush=True)
    if args.dry_run:
        for run, state in zip(runs, states):
            print(f"  {state:8s} {run.path}")
        return 0
    write_manifest(args.out, runs, ["boltzrl", "sweep", *argv])

    tally = Tally(len(runs))
    old_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    t0 = time.monotonic()
    try:
        if args.backend == "ray":
            from boltzrl.sweep.ray_backend import run_ray

            print(f"sweep: Ray backend, {args.cpus_per_run:g} CPU and {args.gpus_per_run:g} GPU per run", flush=True)
            ok = run_ray(runs, tally, args.ray_address, args.cpus_per_run, args.gpus_per_run)
        else:
            from boltzrl.sweep.local import run_local

            caps = f"{threads} core(s) each" if threads else "no core pinning"
            print(f"sweep: {args.workers} worker(s), {caps}", flush=True)
            if threads and args.workers * threads > cores:
                print(f"sweep: warning: {args.workers} x {threads} cores exceed the {cores} usable; workers share "
                      f"cores", flush=True)
            ok = run_local(runs, tally, args.workers, threads)
    except KeyboardInterrupt:
        print(f"sweep: interrupted after {format_duration(time.monotonic() - t0)}; run the same command again to "
              f"finish ({tally.finished_n} finished, {tally.skipped_n} skipped, {tally.failed_n} failed)",
              file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old_handler)
    print(f"sweep: done in {format_duration(time.monotonic() - t0)}: {tally.finished_n} trained, {tally.skipped_n} "
          f"already complete, {tally.failed_n} failed", flush=True)
    return 0 if ok else 1
