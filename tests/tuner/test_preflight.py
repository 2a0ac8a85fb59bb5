"""trainables.preflight and tuner.orchestration.preflight: each check passes on good input and fails with one
line naming the problem and the fix."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from pathlib import Path

import pytest

from trainables import preflight
from trainables.config import ConfigError
from trainables.preflight import (
    check_gpus,
    check_offline_assets,
    check_ranges,
    check_ray_address,
    check_writable_dir,
    check_writable_file,
    ray_target,
)
from trainables.presets import load_preset
from tuner.orchestration.preflight import check_mlflow_uri


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(err: pytest.ExceptionInfo[ConfigError], *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message and all(n in message for n in needles), message


@pytest.mark.parametrize(("values", "needle"), [
    ({"--delta": 5.0}, "--delta must be in (0, 1) (got 5)"),
    ({"--delta": 0.0}, "--delta must be in (0, 1) (got 0)"),
    ({"--confidence": 1.0}, "--confidence must be in (0, 1) (got 1)"),
    ({"--limit": -5.0}, "--limit must be > 0 (got -5)"),
    ({"--batch-size": 0}, "--batch-size must be >= 1 (got 0)"),
    ({"--gpus-per-worker": -1.0}, "--gpus-per-worker must be >= 0 (got -1)"),
    ({"--workers": 0}, "--workers must be >= 1 (got 0)"),
])
def test_out_of_range_values_are_rejected(values, needle):
    with pytest.raises(ConfigError) as err:
        check_ranges(values)
    _one_line(err, needle)


def test_in_range_and_unset_values_pass():
    check_ranges({"--delta": 0.02, "--confidence": 0.95, "--limit": 0.5, "--batch-size": 1,
                  "--gpus-per-worker": 0.0, "--workers": 1, "--num-samples": None})


def test_writable_dir_probe_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    check_writable_dir(target, "run directory")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as err:
        check_writable_dir(tmp_path / "file" / "run", "run directory")
    _one_line(err, "is not a directory")
    with pytest.raises(ConfigError) as err:
        check_writable_dir(Path("/proc/no-such-dir/run"), "--out")
    _one_line(err, "--out /proc/no-such-dir/run: cannot write in /proc", "pass a writable directory")


def test_writable_file_rejects_a_directory(tmp_path):
    check_writable_file(tmp_path / "new" / "out.json", "--json")
    with pytest.raises(ConfigError) as err:
        check_writable_file(tmp_path, "--json")
    _one_line(err, "is a directory")


def test_ray_address_needs_a_listener(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_ray_address(f"127.0.0.1:{server.getsockname()[1]}")
        port = server.getsockname()[1]
    with pytest.raises(ConfigError) as err:
        check_ray_address(f"127.0.0.1:{port}", timeout=1)
    _one_line(err, f"--address 127.0.0.1:{port}: no Ray cluster answers", "ray start --head")
    with pytest.raises(ConfigError) as err:
        check_ray_address("nonsense")
    _one_line(err, "expected host:port")


def test_a_stale_ray_start_file_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_closed_port()}\n")
    with pytest.raises(ConfigError) as err:
        check_ray_address(None, timeout=1)  # ray.init() would join the last `ray start` cluster
    _one_line(err, str(tmp_path / "ray" / "ray_current_cluster"), "--address local")
    check_ray_address("local")


def test_ray_target_follows_ray_s_own_order(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert ray_target(None) == (None, "")  # start Ray in this process
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.0.0.1:6379\n")
    assert ray_target(None)[0] == ray_target("auto")[0] == "10.0.0.1:6379"  # the last `ray start`
    assert ray_target("local") == (None, "--address")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.2:6379")
    assert ray_target("10.0.0.3:6379") == ("10.0.0.2:6379", "RAY_ADDRESS")  # Ray lets the variable win


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(404 if self.path != "/health" else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_mlflow_uri_needs_an_answer(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_mlflow_uri(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(ConfigError) as err:
        check_mlflow_uri(f"http://127.0.0.1:{server.server_port}", tries=2, timeout=1)
    _one_line(err, "no MLflow server answers", "mlflow server")
    check_mlflow_uri(f"sqlite:///{tmp_path}/new/mlflow.db")
    with pytest.raises(ConfigError):
        check_mlflow_uri("sqlite:////proc/no-such-dir/mlflow.db")


def test_gpus_requested_must_exist():
    check_gpus(0.0, 4, 0, "this machine")
    check_gpus(0.5, 2, 1, "this machine")
    with pytest.raises(ConfigError) as err:
        check_gpus(1.0, 2, 1, "the Ray cluster")
    _one_line(err, "needs 2 GPU(s), but the Ray cluster has 1", "--gpus-per-worker 0")


def test_local_gpus_honours_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert preflight.local_gpus() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert preflight.local_gpus() == 2


def test_offline_model_and_data_must_be_local(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        check_offline_assets(load_preset("deep-ignorance"))
    _one_line(err, "model=EleutherAI/deep-ignorance-unfiltered", "hf download EleutherAI/deep-ignorance-unfiltered")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    early = load_preset("deep-ignorance", {"model": str(model)})
    with pytest.raises(ConfigError) as err:  # the model is local now; the early checkpoint is not
        check_offline_assets(early)
    _one_line(err, "checkpoint_model=EleutherAI/deep-ignorance-pretraining-stage-unfiltered --revision "
                   "global_step38144")
    data = load_preset("deep-ignorance", {"model": str(model), "checkpoint_model": str(model)})
    with pytest.raises(ConfigError) as err:
        check_offline_assets(data)
    _one_line(err, "'forget.path': dataset Unlearning/WMDP-Bio-Remove-Dataset is not cached")
    check_offline_assets(load_preset("miniworld"))  # built locally, never downloaded
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    check_offline_assets(load_preset("deep-ignorance"))  # online: the libraries download what is missing


def test_cache_dir_must_be_usable(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_TUNER_CACHE", str(tmp_path / "cache"))
    preflight.check_cache_dir(load_preset("miniworld-small"))
    assert (tmp_path / "cache").is_dir() and os.listdir(tmp_path / "cache") == []
    monkeypatch.setenv("UNLEARN_TUNER_CACHE", "/proc/no-such-dir/cache")
    with pytest.raises(ConfigError) as err:
        preflight.check_cache_dir(load_preset("miniworld-small"))
    _one_line(err, "cache directory /proc/no-such-dir/cache (UNLEARN_TUNER_CACHE) is not usable")


def test_a_world_without_released_weights_is_refused_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_TUNER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConfigError) as err:
        preflight.check_cache_dir(load_preset("miniworld", {"world_seed": 7}))
    _one_line(err, "no released weights for miniworld world seed 7")
    assert "world_weights=pretrain" in str(err.value) and not (tmp_path / "cache").exists()
    preflight.check_cache_dir(load_preset("miniworld", {"world_seed": 7, "world_weights": "pretrain"}))
