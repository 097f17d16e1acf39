"""`boltzrl sweep`: the grid, run-folder states, core pinning, and real sweeps (local and Ray) that are killed,
re-run, and re-run again."""

import csv
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boltzrl.agents import get_algo
from boltzrl.sweep.cli import Tally, main
from boltzrl.sweep.grid import build_grid, mismatch, prepare, run_state
from boltzrl.sweep.local import core_slots
from boltzrl.training import TrainConfig
from conftest import tensorboard_points

TINY = ["actor_hidden=16x16", "critic_hidden=16x16", "warmup_steps=100", "batch_size=32", "eval_every=200",
        "eval_episodes=1", "log_every=100", "checkpoint_every=100"]
STEPS = 400
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


# the grid --------------------------------------------------------------------------------------------------
def test_grid_paths_order_and_values(tmp_path):
    runs = build_grid(["sac", "td3"], ["Pendulum-v1", "dm_control/cheetah-run-v0"], [0, 1], 1000, tmp_path,
                      sets=["critic_hidden=64x64,32 32", "actor_lr=1e-3"])
    assert len(runs) == 2 * 2 * 2 * 2
    assert [r.seed for r in runs[:8]] == [0] * 8  # seeds vary slowest
    first = runs[0]
    assert first.variant == "critic_hidden=64x64,actor_lr=0.001"
    assert Path(first.path) == tmp_path / "sac" / "Pendulum-v1" / "critic_hidden=64x64,actor_lr=0.001" / "seed0"
    assert Path(runs[2].path).parts[-3] == "dm_control_cheetah-run-v0"
    assert runs[1].variant == "critic_hidden=32x32,actor_lr=0.001"
    args = first.fresh_args()
    assert args[args.index("--critic-hidden") + 1:args.index("--critic-hidden") + 3] == ["64", "64"]
    assert "--actor-lr=0.001" in args
    assert first.expected["agent"]["critic_hidden"] == [64, 64] and first.expected["train"]["env"] == "Pendulum-v1"


def test_set_values_are_read_by_the_train_parser(tmp_path):
    """--set texts become what the same text gives on `boltzrl train`: its types, tuples, Optional and bools."""
    sets = ["autotune_alpha=false", "target_entropy=None,-1e-05", "critic_hidden=256x256x128", "warmup_steps=1_000"]
    runs = build_grid(["sac"], ["Pendulum-v1"], [0], 100, tmp_path, sets=sets)
    assert [dict(r.overrides) for r in runs] == [
        {"autotune_alpha": False, "target_entropy": value, "critic_hidden": (256, 256, 128), "warmup_steps": 1000}
        for value in (None, -1e-05)]
    for run in runs:
        assert run.fresh_args().count("--no-autotune-alpha") == 1
    with pytest.raises(ValueError, match="cannot read '2.5' as int"):
        build_grid(["sac"], ["Pendulum-v1"], [0], 100, tmp_path, sets=["warmup_steps=2.5"])


@pytest.mark.parametrize("sets, message", [
    (["learning_rate=3"], "no such option"),
    (["seed=1,2"], "use the sweep's own --seed"),
    (["alpha_every=3"], "option of sdac only"),
    (["gamma=high"], "cannot read 'high' as float"),
    (["critic_hidden"], "expects key=value"),
    (["actor_lr=3e-4,-1e-3"], "learning rate and must be non-negative"),
    (["gamma=2"], "must be in \\[0, 1\\]"),
])
def test_bad_set_values_fail_before_anything_runs(tmp_path, sets, message):
    algos = ["sac", "sdac"] if "alpha_every" in sets[0] else ["sac"]
    with pytest.raises(ValueError, match=message):
        build_grid(algos, ["Pendulum-v1"], [0], 100, tmp_path, sets=sets)


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_run_states_and_what_each_needs(tmp_path):
    (run,) = build_grid(["sac"], ["Pendulum-v1"], [3], 500, tmp_path, sets=["critic_hidden=8x8"])
    folder = Path(run.path)
    assert run_state(run) == "fresh"
    config = {"algo": "sac", **run.expected, "train": dict(run.expected["train"], steps=500)}
    _write(folder / "config.json", config)
    (folder / "eval.csv").write_text("env_step,eval_return\n100,-1.0\n")
    assert run_state(run) == "restart"  # stopped before its first checkpoint
    args = prepare(run, "restart")
    assert not (folder / "eval.csv").exists() and "--resume" not in args and "--critic-hidden" in args

    _write(folder / "config.json", config)
    _write(folder / "checkpoint.old" / "loop.json", {"env_steps": 200})  # killed between the two renames
    assert run_state(run) == "resume"
    assert prepare(run, "resume") == ["--out", run.path, "--resume", "--steps", "500"]
    assert (folder / "checkpoint" / "loop.json").exists() and not (folder / "checkpoint.old").exists()

    _write(folder / "summary.json", {"complete": True})
    assert run_state(run) == "complete"
    _write(folder / "config.json", dict(config, train=dict(config["train"], steps=300)))
    assert run_state(run) == "extend"  # finished, but for fewer steps than asked
    assert mismatch(run) is None
    _write(folder / "config.json", dict(config, agent=dict(config["agent"], critic_hidden=[16, 16])))
    assert "critic_hidden" in mismatch(run)


def test_workers_get_disjoint_cores_and_the_launcher_pins_them():
    available = sorted(os.sched_getaffinity(0))
    slots = core_slots(len(available), 1)
    assert sorted(c for s in slots for c in s) == available
    assert core_slots(3, 0) == [None] * 3
    probe = "import os; print(sorted(os.sched_getaffinity(0)), os.environ.get('OMP_NUM_THREADS'))"
    from boltzrl.sweep.local import child_env

    out = subprocess.run([sys.executable, "-m", "boltzrl.sweep.local", "--parent", str(os.getpid()), "--cores",
                          str(available[-1]), "--", sys.executable, "-c", probe],
                         capture_output=True, text=True, env=child_env(1), check=True).stdout
    assert out.split() == [f"[{available[-1]}]", "1"]


def test_tally_counts(capsys):
    (run,) = build_grid(["sac"], ["Pendulum-v1"], [0], 100, "/nonexistent")
    tally = Tally(3)
    tally.started(run, "fresh", [0])
    tally.skipped(run, "complete")
    tally.failed(run, 1, "boom")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[0/3] started") and "on cores 0" in lines[0] and "(1 in progress" in lines[0]
    assert lines[2].startswith("[2/3] FAILED") and "(0 in progress, 0 finished, 1 skipped, 1 failed)" in lines[2]


# stopping a sweep stops its runs ------------------------------------------------------------------------------------
# A sweep whose runs are stand-ins started through the real launcher: each writes its PID, and on SIGTERM writes
# "stopped" (where a training process saves its checkpoint) and exits.
FAKE_RUN = """
import os, signal, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
def stopped(signum, frame):
    (folder / "stopped").write_text(str(signum))
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped)
(folder / "pid").write_text(str(os.getpid()))
time.sleep(300)
"""
FAKE_SWEEP = """
import signal, sys
from pathlib import Path
from boltzrl.sweep import local
from boltzrl.sweep.grid import Run

signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job a script starts in the background
launcher = local.train_command
def train_command(args, cores):
    command = launcher([], cores)
    return command[:command.index("--") + 2] + ["-c", sys.argv[2], *args]
local.train_command = train_command
local.prepare = lambda run, state: [run.path]
local.run_state = lambda run: "fresh"
class Progress:
    def __getattr__(self, name):
        return lambda *args: print(name, flush=True)
runs = [Run("sac", "Pendulum-v1", s, 100, None, (), "default", str(Path(sys.argv[1]) / f"seed{s}"), {})
        for s in (0, 1)]
try:
    local.run_local(runs, Progress(), workers=2, threads=0)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_killing_a_sweep_stops_its_runs(tmp_path, sig):
    sweep = subprocess.Popen([sys.executable, "-c", FAKE_SWEEP, str(tmp_path), FAKE_RUN], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid_files = [tmp_path / f"seed{s}" / "pid" for s in (0, 1)]
    pids = []
    try:
        deadline = time.time() + 120
        while not all(f.exists() and f.read_text() for f in pid_files):
            assert sweep.poll() is None and time.time() < deadline, sweep.communicate(timeout=5)[0]
            time.sleep(0.05)
        pids = [int(f.read_text()) for f in pid_files]
        sweep.send_signal(sig)
        try:
            code = sweep.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the sweep did not stop on signal {sig.name}")
        assert code == (130 if sig != signal.SIGKILL else -signal.SIGKILL)
        deadline = time.time() + 30
        while any(_alive(pid) for pid in pids) and time.time() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids), "a run outlived its sweep"
        assert [(tmp_path / f"seed{s}" / "stopped").read_text() for s in (0, 1)] == [str(int(signal.SIGTERM))] * 2
    finally:
        if sweep.poll() is None:
            sweep.kill()
        sweep.communicate()
        for pid in pids:  # the stand-ins this test started, should they have survived
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# real sweeps ----------------------------------------------------------------------------------------------------
def _sweep_args(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "boltzrl.cli", "sweep", "--algos", "sac", "td3", "--envs", "Pendulum-v1",
            "--seeds", "0", "1", "--steps", str(STEPS), "--out", str(out), "--set", *TINY, *extra]


def _run_folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob("config.json"))


def _eval_curve(folder: Path) -> list[tuple[int, float]]:
    with open(folder / "eval.csv") as f:
        return [(int(r["env_step"]), float(r["eval_return"])) for r in csv.DictReader(f)]


def _assert_complete(out: Path, runs: int = 4) -> None:
    folders = _run_folders(out)
    assert len(folders) == runs
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["complete"] and summary["env_steps"] == STEPS, folder
        assert [step for step, _ in _eval_curve(folder)] == [200, 400], folder


def _wait_until_unlocked(out: Path, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    for lock in out.rglob(".sweep.lock"):
        fd = os.open(lock, os.O_RDONLY)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    assert time.time() < deadline, f"{lock} still held"
                    time.sleep(0.2)
        finally:
            os.close(fd)


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory):
    """A local sweep killed (SIGKILL) soon after its first checkpoint, then run again to the end."""
    out = tmp_path_factory.mktemp("killed") / "sweep"
    proc = subprocess.Popen(_sweep_args(out, "--workers", "2", "--threads-per-worker", "1"), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not list(out.rglob("checkpoint/loop.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read()
    proc.kill()  # the sweep gets no chance to stop its runs; the kernel sends them SIGTERM
    proc.wait()
    _wait_until_unlocked(out)
    after_kill = {"logs": "".join(p.read_text() for p in out.rglob("sweep.log")),
                  "complete": sum(json.loads(p.read_text()).get("complete", False) for p in out.rglob("summary.json"))}
    second = subprocess.run(_sweep_args(out, "--workers", "2", "--threads-per-worker", "1"), env=ENV,
                            capture_output=True, text=True, timeout=300)
    return out, after_kill, second


def test_local_sweep_killed_then_rerun_finishes_and_a_third_run_does_nothing(killed_sweep, capsys):
    out, after_kill, second = killed_sweep
    # a run saw the sweep die and stopped: with a checkpoint saved, or (killed while still starting) before its first
    # step; the resumed run below shows that a checkpoint was kept
    assert "Interrupted at step" in after_kill["logs"] or "boltzrl: interrupted" in after_kill["logs"]
    assert after_kill["complete"] < 4
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resumed from step" in second.stdout
    _assert_complete(out)
    manifest = json.loads((out / "sweep.json").read_text())
    assert len(manifest["runs"]) == 4 and len(manifest["commands"]) == 2

    assert main(_sweep_args(out, "--workers", "2")[4:]) == 0  # in this process: nothing left to start
    third = capsys.readouterr().out
    assert "0 trained, 4 already complete, 0 failed" in third and "started" not in third


def test_vmapped_seeds_match_their_separate_runs(killed_sweep, tmp_path):
    """Two seeds in one vmapped process follow the same random streams as the sweep's separate runs."""
    from boltzrl.sweep.vmapped import train_vmapped
    from boltzrl.training import config_from_dict

    out, _, _ = killed_sweep
    separate = sorted((out / "sac").rglob("config.json"))
    _, agent_cfg, cfg = config_from_dict(json.loads(separate[0].read_text()))
    summaries = train_vmapped("sac", agent_cfg, cfg, [0, 1], [tmp_path / "seed0", tmp_path / "seed1"])
    assert [s["env_steps"] for s in summaries] == [STEPS, STEPS] and all(s["complete"] for s in summaries)
    for seed in (0, 1):
        vm, sep = _eval_curve(tmp_path / f"seed{seed}"), _eval_curve(separate[seed].parent)
        assert [s for s, _ in vm] == [s for s, _ in sep] == [200, 400]
        assert [r for _, r in vm] == pytest.approx([r for _, r in sep], rel=1e-3)
    assert _eval_curve(tmp_path / "seed0") != _eval_curve(tmp_path / "seed1")
    for seed in (0, 1):  # TensorBoard has every seed's evaluations, as a separate run's does
        assert tensorboard_points(tmp_path / f"seed{seed}" / "tb")["eval/eval_return"] == {200, 400}


def test_vmapped_seeds_refuse_a_folder_another_process_trains(tmp_path):
    from boltzrl.sweep.vmapped import train_vmapped
    from boltzrl.training.run_folder import FolderError, RunFolder

    spec = get_algo("sac")
    cfg = TrainConfig(env="Pendulum-v1", steps=100, warmup_steps=50, batch_size=16, eval_every=100, eval_episodes=1)
    with RunFolder(tmp_path / "seed1").lock():
        with pytest.raises(FolderError, match="is being trained by process"):
            train_vmapped("sac", spec.config(None), cfg, [0, 1], [tmp_path / "seed0", tmp_path / "seed1"])
    assert not (tmp_path / "seed1" / "config.json").exists() and not (tmp_path / "seed0" / "config.json").exists()


@pytest.mark.parametrize("option", [dict(exploration_noise_beta=1.0), dict(deterministic_episode_share=0.5)])
def test_vmapped_seeds_refuse_exploration_options_they_cannot_honour(tmp_path, option):
    from boltzrl.sweep.vmapped import train_vmapped

    cfg = TrainConfig(env="Pendulum-v1", steps=100, warmup_steps=50, batch_size=16, eval_every=100, eval_episodes=1,
                      **option)
    flag = "--" + next(iter(option)).replace("_", "-")
    with pytest.raises(ValueError, match=f"{flag} needs `boltzrl train`"):
        train_vmapped("sac", get_algo("sac").config(None), cfg, [0, 1], [tmp_path / "seed0", tmp_path / "seed1"])
    assert not (tmp_path / "seed0").exists()


def test_ray_sweep_on_a_local_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from boltzrl.sweep.ray_backend import run_ray

    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    out = tmp_path / "sweep"
    runs = build_grid(["sac", "td3"], ["Pendulum-v1"], [0], STEPS, out, sets=TINY)  # one round on two workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert run_ray(runs, Tally(2), None, cpus_per_run=1, gpus_per_run=0)
        _assert_complete(out, runs=2)
        tally = Tally(2)
        assert run_ray(runs, tally, None, cpus_per_run=1, gpus_per_run=0)
        assert (tally.skipped_n, tally.finished_n) == (2, 0)
    finally:
        ray.shutdown()

