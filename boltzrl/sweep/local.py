"""Local backend: up to N runs at once, each a `boltzrl train` subprocess pinned to its own cores.

Thread caps: XLA's CPU thread flags have no effect on this JAX, so each worker is pinned with
`sched_setaffinity` (its compute threads then share only its cores) and the OpenMP/MKL/OpenBLAS pools are
capped by environment variables. Worker w gets cores [w·T, (w+1)·T) of the cores this process may use.

A run's folder is locked (flock on DIR/.../seedS/.sweep.lock, held by the training process too) while it
trains, so two sweeps never train one run at once; a sweep that finds a run locked comes back to it later.
SIGINT, SIGTERM or SIGHUP to the sweep stops each training process with SIGTERM (it then saves a checkpoint) and
waits for it; a second signal kills them at once. Each training process also gets SIGTERM from the kernel when
the sweep dies (PR_SET_PDEATHSIG), so killing a sweep, even with SIGKILL, leaves no run behind, and starting it
again finishes the grid.
"""

from __future__ import annotations

import collections
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from boltzrl.sweep.grid import LOCK_NAME, LOG_NAME, Run, prepare, run_state

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
STOP_GRACE_S = 120.0  # how long a stopped run may take to write its checkpoint


# one run ----------------------------------------------------------------------------------------------------
class RunLock:
    """An exclusive flock on the run folder's lock file; `fd` is passed to the training process."""

    def __init__(self, run: Run):
        folder = Path(run.path)
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)

    def acquire(self, block: bool) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            return True
        except BlockingIOError:
            return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def child_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, **(extra or {}))
    if threads > 0:
        env.update({name: str(threads) for name in THREAD_VARS})
    # Several processes may share one GPU: allocate GPU memory as needed instead of 75 % up front.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def train_command(args: list[str], cores: list[int] | None) -> list[str]:
    """The training process, started through this module's launcher (pins cores, ties it to the sweep)."""
    launcher = [sys.executable, "-m", "boltzrl.sweep.local", "--parent", str(os.getpid())]
    if cores:
        launcher += ["--cores", ",".join(map(str, cores))]
    return launcher + ["--", sys.executable, "-m", "boltzrl.cli", "train", *args]


def start(run: Run, lock: RunLock, state: str, cores: list[int] | None, threads: int,
          extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Prepare the folder and start its training process (in its own session, so a Ctrl-C reaches only the
    sweep, which then stops each run exactly once)."""
    args = prepare(run, state)
    log = open(Path(run.path) / LOG_NAME, "ab")
    log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {state}: boltzrl train {' '.join(args)}\n".encode())
    log.flush()
    try:
        return subprocess.Popen(train_command(args, cores), stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(threads, extra_env), pass_fds=(lock.fd,), start_new_session=True)
    finally:
        log.close()


def log_tail(run: Run, lines: int = 1) -> str:
    try:
        text = (Path(run.path) / LOG_NAME).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP counted instead of raised, so the scheduler is never cut off between starting a
    process and recording it. SIGINT is caught even where it was ignored (a sweep started in the background by a
    script), so that `kill -INT` stops a sweep as Ctrl-C does; an ignored SIGHUP (nohup) stays ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.count = 0
        self._old = {}

    def __enter__(self):
        for sig in self.SIGNALS:
            if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
                continue
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                break
        return self

    def _handle(self, signum, frame):
        self.count += 1

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def stop(procs: list[subprocess.Popen], request: StopRequest | None = None) -> None:
    """SIGTERM each process once (it checkpoints and exits), then wait; SIGKILL what outlives the grace, or
    everything at once on one more signal."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    signals = request.count if request else 0
    while any(proc.poll() is None for proc in procs):
        if time.monotonic() > deadline or (request and request.count > signals):
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            break
        time.sleep(0.05)
    for proc in procs:
        proc.wait()


# the scheduler ------------------------------------------------------------------------------------------------
def core_slots(workers: int, threads: int) -> list[list[int] | None]:
    """The cores of each worker slot (None: no pinning when threads == 0)."""
    if threads == 0:
        return [None] * workers
    available = sorted(os.sched_getaffinity(0))
    return [[available[(w * threads + t) % len(available)] for t in range(threads)] for w in range(workers)]


def run_local(runs: list[Run], progress, workers: int, threads: int, poll_s: float = 0.2) -> bool:
    """Run the grid with `workers` concurrent runs of `threads` cores each; True when every run completed.

    `progress` gets started(run, state, slot_cores), finished(run, seconds), failed(run, code, tail),
    skipped(run, reason), waiting(run), interrupted(runs).
    """
    slots = core_slots(workers, threads)
    free = collections.deque(range(workers))
    pending = collections.deque(runs)
    running: dict[int, tuple[Run, subprocess.Popen, RunLock, float]] = {}
    waited: set[str] = set()
    ok = True
    with StopRequest() as request:
        try:
            while (pending or running) and not request.count:
                locked = []
                while free and pending and not request.count:
                    run = pending.popleft()
                    lock = RunLock(run)
                    if not lock.acquire(block=False):
                        lock.close()
                        locked.append(run)
                        if run.path not in waited:
                            waited.add(run.path)
                            progress.waiting(run)
                        continue
                    state = run_state(run)
                    if state == "complete":
                        lock.close()
                        progress.skipped(run, "complete")
                        continue
                    slot = free.popleft()
                    proc = start(run, lock, state, slots[slot], threads)
                    running[slot] = (run, proc, lock, time.monotonic())
                    progress.started(run, state, slots[slot])
                pending.extend(locked)
                time.sleep(poll_s if running or not locked else 1.0)
                for slot, (run, proc, lock, t0) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    lock.close()
                    del running[slot]
                    free.append(slot)
                    if code == 0 and run_state(run) == "complete":
                        progress.finished(run, time.monotonic() - t0)
                    else:
                        ok = False
                        progress.failed(run, code, log_tail(run))
        finally:
            if running:  # stopped by a signal, or by an error of the sweep itself: its runs stop with it
                progress.interrupted([run for run, *_ in running.values()])
                stop([proc for _, proc, _, _ in running.values()], request)
                for _, _, lock, _ in running.values():
                    lock.close()
    if request.count:
        raise KeyboardInterrupt
    return ok


# the launcher -------------------------------------------------------------------------------------------------
def _exec_pinned(argv: list[str]) -> None:
    """`python -m boltzrl.sweep.local --parent PID [--cores 0,1] -- COMMAND...`: pin, tie to the parent, exec."""
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    opts = dict(zip(options[::2], options[1::2]))
    if "--cores" in opts:
        os.sched_setaffinity(0, {int(c) for c in opts["--cores"].split(",")})
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the run is not stopped with the sweep
        pass
    if os.getppid() != int(opts["--parent"]):
        sys.exit("the sweep that started this run has exited")
    os.execv(command[0], command)


if __name__ == "__main__":
    _exec_pinned(sys.argv[1:])
