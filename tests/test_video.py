"""Videos of evaluation episodes: gmm-nav's frames, `boltzrl eval --video`, and the refusals."""

import sys

import gymnasium as gym
import numpy as np
import pytest

from boltzrl.agents import get_algo
from boltzrl.cli import main
from boltzrl.envs import make_env, register_env
from boltzrl.envs.gmm_nav import GMM40Nav
from boltzrl.training import TrainConfig, train
from boltzrl.video import FrameRecorder, check_can_render

imageio = pytest.importorskip("imageio.v2")
pytest.importorskip("imageio_ffmpeg")


def test_gmm_nav_frame_shows_the_agent_where_it_is():
    env = GMM40Nav(render_mode="rgb_array")
    env.reset(options={"state": (0.0, 0.0)})
    first = env.render()
    assert first.shape == (256, 256, 3) and first.dtype == np.uint8
    assert tuple(first[128, 128]) == (255, 0, 0)  # the centre of the box is the centre of the image
    env.step(np.array([1.0, 0.0], np.float32))
    env.step(np.array([1.0, 0.0], np.float32))
    moved = env.render()
    assert not np.array_equal(first, moved)
    assert tuple(moved[128, 128 + 5]) == (255, 0, 0)  # 2 units right are 2 * 256 / 100 ≈ 5 pixels right
    assert tuple(moved[128, 128 - 4]) != (255, 0, 0)
    assert make_env("gmm-nav", 0).render() is None  # frames only when asked for


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("video") / "run"
    config = get_algo("sac").config(None, actor_hidden=(16, 16), critic_hidden=(16, 16))
    cfg = TrainConfig(env="gmm-nav", steps=200, warmup_steps=100, batch_size=32, eval_every=200, eval_episodes=1,
                      checkpoint_every=0, log_every=100, seed=0)
    train("sac", config, cfg, run, verbose=False)
    return run


@pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")  # imageio reads through ffmpeg
def test_eval_video_writes_one_readable_mp4_per_episode(gmm_run, tmp_path, capsys):
    out = tmp_path / "videos"
    assert main(["eval", str(gmm_run), "--episodes", "2", "--video-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert main(["eval", str(gmm_run), "--episodes", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == printed.splitlines()[0]  # recording changes no return
    videos = sorted(out.glob("*.mp4"))
    assert [v.name for v in videos] == ["step200-seed0-episode0.mp4", "step200-seed0-episode1.mp4"]
    for video in videos:
        assert f"video: {video}" in printed
        frames = imageio.mimread(video, memtest=False)
        assert len(frames) == 101  # the reset and each of the episode's 100 steps
        assert frames[0].shape == (256, 256, 3)
    assert not list(out.glob("*.tmp*"))


def test_eval_video_defaults_to_the_run_folder_and_records_the_first_three(gmm_run):
    assert main(["eval", str(gmm_run / "checkpoint"), "--episodes", "4", "--video"]) == 0
    assert len(list((gmm_run / "videos").glob("step200-seed0-episode*.mp4"))) == 3


def test_missing_video_extra_is_one_sentence(gmm_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
    assert main(["eval", str(gmm_run), "--video"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'boltzrl[video]'" in err and len(err.splitlines()) == 1
    assert err.count(". ") == 0


def test_eval_video_of_an_env_that_cannot_render_exits_2_in_one_sentence(gmm_run, monkeypatch, capsys):
    monkeypatch.setattr(GMM40Nav, "metadata", {"render_modes": []})
    assert main(["eval", str(gmm_run), "--video-dir", str(gmm_run / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gmm-nav cannot render frames" in err and len(err.splitlines()) == 1
    assert not (gmm_run / "none").exists()


class _Blind(gym.Env):
    metadata = {"render_modes": []}
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def test_env_that_cannot_render_is_refused_in_one_sentence():
    register_env("test-blind", _Blind)
    with pytest.raises(ValueError, match="test-blind cannot render frames") as caught:
        check_can_render("test-blind")
    assert len(str(caught.value).splitlines()) == 1


def test_missing_render_dependency_is_one_sentence():
    try:
        import pygame  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pygame is installed, so Pendulum renders")
    recorder = FrameRecorder(make_env("Pendulum-v1", 0, render_mode="rgb_array"), "Pendulum-v1")
    recorder.start()
    with pytest.raises(ValueError, match="Pendulum-v1 cannot render here .*pygame") as caught:
        recorder.reset(seed=0)
    assert len(str(caught.value).splitlines()) == 1
