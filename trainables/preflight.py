"""Checks before compute: everything a run needs, verified before Ray starts or a model loads.

Each check raises ``ConfigError`` with one line that names the problem and the fix; the CLIs print it as
``error: ...`` and exit 2. Nothing here creates the run directory: writability is probed in the nearest
existing parent, so a failed check leaves nothing behind. Used by ``trainables.train``, the evaluation
CLI (``python -m tuner.evaluate``) and the search service (``tuner``, which adds its own checks on top).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from trainables.config import MINIWORLD_MODELS, ConfigError, TrainConfig

# flag -> (low, high, low inclusive, high inclusive, hint); one table, so every CLI says it the same way
RANGES: dict[str, tuple[float | None, float | None, bool, bool, str]] = {
    "--delta": (0, 1, False, False, "an accuracy fraction, e.g. 0.02 for 2 points"),
    "--confidence": (0, 1, False, False, "a probability, e.g. 0.95"),
    "--limit": (0, None, False, False, "questions per subtask (>= 1) or a fraction (< 1)"),
    "--batch-size": (1, None, True, False, "examples per forward pass"),
    "--gpus-per-worker": (0, None, True, False, "0 trains on CPU"),
    "--workers": (1, None, True, False, "Ray Train workers"),
    "--workers-per-trial": (1, None, True, False, "Ray Train workers per trial"),
    "--num-samples": (1, None, True, False, "trials to run"),
    "--max-concurrent": (1, None, True, False, "trials at once"),
}


def check_ranges(values: dict[str, float | None]) -> None:
    """``{"--delta": 0.5, ...}``: each value not None must lie in its ``RANGES`` interval."""
    for flag, value in values.items():
        if value is None:
            continue
        low, high, low_in, high_in, hint = RANGES[flag]
        ok = ((low is None or value > low or (low_in and value == low))
              and (high is None or value < high or (high_in and value == high)))
        if not ok:
            if high is None:
                interval = f">= {low:g}" if low_in else f"> {low:g}"
            else:
                interval = f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
            raise ConfigError(f"{flag} must be {interval} (got {value:g}): {hint}")


def check_writable_dir(path: Path, what: str) -> None:
    """``path`` is a directory, or can be made one, and is writable; creates nothing that stays."""
    existing = Path(path).absolute()
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {path}: {existing} is not a directory; pass a directory path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot write in {existing} ({e.strerror}); "
                          f"pass a writable directory") from None


def check_writable_file(path: Path, what: str) -> None:
    """A file to be written at the end of a run: its directory must be writable, and it no directory."""
    if Path(path).is_dir():
        raise ConfigError(f"{what} {path} is a directory; pass a file path")
    check_writable_dir(Path(path).absolute().parent, f"{what} {path}: directory")


def check_cache_dir(cfg: TrainConfig) -> None:
    """The mini-world cache (``$UNLEARN_TUNER_CACHE``) is created and written on first use, and the chosen
    world has released weights (or ``world_weights=pretrain``)."""
    if cfg.model not in MINIWORLD_MODELS:
        return
    from trainables.miniworld.build import cache_root, world_config

    try:
        world_config(cfg.model, cfg.world_seed, cfg.world_weights)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=root))
    except OSError as e:
        raise ConfigError(f"cache directory {root} (UNLEARN_TUNER_CACHE) is not usable ({e.strerror}); "
                          f"set UNLEARN_TUNER_CACHE to a writable directory") from None


def ray_target(address: str | None) -> tuple[str | None, str]:
    """What ``ray.init(address)`` would connect to, and where that came from (None: start Ray here)."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    if address not in (None, "auto"):
        return (None if address == "local" else address), "--address"
    current = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    if current.is_file() and current.read_text().strip():
        return current.read_text().strip(), str(current)
    return None, ""


def check_ray_address(address: str | None, timeout: float = 3.0) -> None:
    """A TCP connect to the cluster Ray would join (``--address``, RAY_ADDRESS or the last ``ray start``)."""
    target, source = ray_target(address)
    if target is None:
        return
    host, sep, port = target.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{source} {target}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        fix = ("start it (ray start --head) or drop --address to start Ray in this process" if source == "--address"
               else "start that cluster, or pass --address local to start Ray in this process")
        raise ConfigError(f"{source} {target}: no Ray cluster answers at {host}:{port} ({e.strerror or e}); "
                          f"{fix}") from None


def local_gpus() -> int:
    """GPUs Ray would find on this machine: CUDA_VISIBLE_DEVICES if set, else ``nvidia-smi -L``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() not in ("", "-1")])
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def check_gpus(gpus_per_worker: float, workers: int, available: float, where: str) -> None:
    """A trial's GPUs (workers x per worker) must exist, else Ray would wait for them forever."""
    need = gpus_per_worker * workers
    if gpus_per_worker > 0 and need > available:
        raise ConfigError(f"--gpus-per-worker {gpus_per_worker:g} x {workers} worker(s) needs {need:g} GPU(s), "
                          f"but {where} has {available:g}; lower them, or pass --gpus-per-worker 0 for CPU")


def env_flag(name: str) -> bool:
    """``HF_HUB_OFFLINE=1`` and friends: 1, true, yes or on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def check_offline_assets(cfg: TrainConfig) -> None:
    """With HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: the model, checkpoint and datasets are already local."""
    if cfg.model in MINIWORLD_MODELS:
        return
    hub_offline = env_flag("HF_HUB_OFFLINE")
    if hub_offline:
        check_model_files(cfg.model, cfg.revision, "model=")
        if cfg.needs_checkpoint:
            check_model_files(cfg.checkpoint_model, cfg.checkpoint_revision, "checkpoint_model=")
    if hub_offline or env_flag("HF_DATASETS_OFFLINE"):
        for side in ("forget", "retain"):
            spec = getattr(cfg, side)
            if spec.source == "hf":
                _check_dataset(spec.path, f"{side}.path")
        if cfg.eval_tasks == "real" and not cfg.eval_data_root:
            for repo in ("cais/wmdp", "cais/mmlu"):
                _check_dataset(repo, "eval_data_root")


def check_model_files(source: str, revision: str | None, option: str) -> None:
    """A local model directory, or a cached Hub snapshot, with config.json and weights (offline runs)."""
    folder: Path | None = Path(source).expanduser()
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(source, revision=revision, local_files_only=True))
        except (OSError, ValueError):  # LocalEntryNotFoundError, or not a valid repo id
            folder = None
    weights = folder is not None and any(p.suffix in (".safetensors", ".bin") for p in folder.iterdir())
    if not weights or not (folder / "config.json").is_file():
        at = f" --revision {revision}" if revision else ""
        raise ConfigError(f"{option}{source}{at}: no config.json + weights on this machine and HF_HUB_OFFLINE=1; "
                          f"run `hf download {source}{at}` where there is internet, or pass a local directory")


def _check_dataset(repo: str, field: str) -> None:
    if Path(repo).expanduser().is_dir():
        return
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo, repo_type="dataset", local_files_only=True)
        return
    except (OSError, ValueError):  # not in the hub cache; maybe in the datasets cache
        pass
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    cache = Path(os.environ.get("HF_DATASETS_CACHE", hf_home / "datasets"))
    if not (cache / repo.replace("/", "___")).is_dir():
        raise ConfigError(f"config field {field!r}: dataset {repo} is not cached on this machine and the "
                          f"Hugging Face libraries are offline; run `hf download --repo-type dataset {repo}` "
                          f"where there is internet, or set {field}= to a local copy")


def check_train_run(cfg: TrainConfig, gpus_per_worker: float, workers: int, address: str | None,
                    ray: bool = True) -> None:
    """What a training run needs besides a valid config: cache, cluster (``ray``), GPUs, offline assets."""
    check_cache_dir(cfg)
    if ray:
        check_ray_address(address)
        if ray_target(address)[0] is None:
            check_gpus(gpus_per_worker, workers, local_gpus(), "this machine")
    check_offline_assets(cfg)
