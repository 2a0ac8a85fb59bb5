"""Submit a search to a running Ray cluster as a Ray job, and manage it.

    python -m cluster.submit [--address http://127.0.0.1:8265] [--token-path P] [--no-wait] \\
        [--submission-id ID] [--mlflow-uri URI] [--hf-offline] [--report-interval S] \\
        -- python -m tuner.run --space kl_boundary --run-dir /shared/runs/kl1
    python -m cluster.submit status JOB_ID
    python -m cluster.submit logs JOB_ID [--follow]
    python -m cluster.submit stop JOB_ID

The working directory uploaded with the job is the repository root (or --working-dir), without
run directories, .git, caches, databases and files over 20 MiB. The job's env_vars:
HF_HUB_OFFLINE / HF_DATASETS_OFFLINE / HF_HOME (when set here or by --hf-offline),
MLFLOW_TRACKING_URI (--mlflow-uri or set here), RAY_TRAIN_HEALTH_CHECK_INTERVAL_S
(--report-interval, default 0.5), and RAY_OVERRIDE_JOB_RUNTIME_ENV=1 (a driver's own
ray.init(runtime_env=...) setting the same keys then wins instead of failing).
Token auth: --token-path, else RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token; the
`sbatch cluster/slurm/ray_cluster.sbatch` job prints its address and token path. --address
defaults to RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265. Exit status: 0 job succeeded
(or submitted, with --no-wait), 1 job failed or was stopped, 2 bad input or the cluster refused
or could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXCLUDES = [
    ".git",
    "runs/",
    "mlruns/",
    "__pycache__/",
    ".pytest_cache/",
    ".ruff_cache/",
    "*.egg-info/",
    ".cache/",
    ".venv/",
    "venv/",
    "build/",
    "dist/",
    "*.db",
    "*.sqlite",
    "*.pt",
    "*.safetensors",
    "!/trainables/miniworld/released/*/*.safetensors",  # the mini-world's shipped weights (release.py)
    "*.ckpt",
    "*.tar",
    "*.tar.gz",
    "*.zip",
]
MAX_FILE_BYTES = 20 << 20
PASS_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME", "MLFLOW_TRACKING_URI")
COMMANDS = ("status", "logs", "stop")


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line instead of usage + error
        raise UsageError(f"{message} (see --help)")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split at the first `--`: options (and a sub-command) before it, the entrypoint after."""
    entry: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, entry = argv[:cut], argv[cut + 1 :]
    p = Parser(prog="python -m cluster.submit", description=__doc__.split("\n")[0])
    p.add_argument("command", nargs="?", choices=COMMANDS, help="manage an existing job instead")
    p.add_argument("job_id", nargs="?", help="job / submission id for status, logs, stop")
    p.add_argument(
        "--address",
        default=os.environ.get("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8265"),
        help="Ray dashboard / job API address (default: %(default)s)",
    )
    p.add_argument(
        "--token-path",
        default=os.environ.get("RAY_AUTH_TOKEN_PATH"),
        help="the cluster's auth token file (default: RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)",
    )
    p.add_argument("--no-wait", action="store_true", help="submit and return; do not stream logs")
    p.add_argument("--follow", action="store_true", help="logs: stream until the job ends")
    p.add_argument("--submission-id", help="job id to use (default: Ray picks one)")
    p.add_argument("--working-dir", type=Path, default=REPO_ROOT, help="uploaded as the job's cwd")
    p.add_argument(
        "--mlflow-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLFLOW_TRACKING_URI for the job (default: the run dir's sqlite db)",
    )
    p.add_argument("--hf-offline", action="store_true", help="set HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1")
    p.add_argument(
        "--report-interval",
        default=os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5"),
        help="RAY_TRAIN_HEALTH_CHECK_INTERVAL_S for the job (default: %(default)s)",
    )
    args = p.parse_args(argv)
    if not args.address.startswith(("http://", "https://")):
        raise UsageError(f"--address must be the dashboard's http(s)://host:port, not {args.address!r}")
    if args.command and (not args.job_id or entry):
        raise UsageError(f"usage: python -m cluster.submit {args.command} JOB_ID (no entrypoint)")
    if not args.command and (args.job_id or not entry):
        raise UsageError("nothing to submit: give the entrypoint after `--`, e.g. -- python -m tuner.run ...")
    try:
        float(args.report_interval)
    except ValueError:
        bad = args.report_interval
        raise UsageError(f"--report-interval must be a number of seconds, not {bad!r}") from None
    return args, entry


def read_token(token_path: str | None) -> tuple[Path, str]:
    """The token file to use and its content; sets the SDK's token-auth environment."""
    path = Path(token_path).expanduser() if token_path else Path.home() / ".ray" / "auth_token"
    if not path.is_file():
        raise UsageError(f"no auth token at {path}: pass --token-path (printed by the sbatch job)")
    token = path.read_text().strip()
    if not token:
        raise UsageError(f"auth token file {path} is empty")
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(path))
    os.environ.pop("RAY_AUTH_TOKEN", None)
    return path, token


def runtime_env(args: argparse.Namespace) -> dict[str, Any]:
    """working_dir with excludes, plus the env_vars the search needs."""
    root = args.working_dir.resolve()
    if not root.is_dir():
        raise UsageError(f"--working-dir {root} is not a directory")
    excludes = list(EXCLUDES)
    skip_dirs = {e.rstrip("/") for e in EXCLUDES if e.endswith("/") and "*" not in e} | {".git"}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs and not d.endswith(".egg-info")]
        for name in filenames:
            f = Path(dirpath, name)
            if f.is_file() and not f.is_symlink() and f.stat().st_size > MAX_FILE_BYTES:
                rel = f.relative_to(root).as_posix()
                excludes.append("/" + rel)
                print(f"cluster.submit: not uploading {rel} ({f.stat().st_size >> 20} MiB)", file=sys.stderr)
    env_vars = {k: os.environ[k] for k in PASS_ENV if os.environ.get(k)}
    if args.hf_offline:
        env_vars.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if args.mlflow_uri:
        env_vars["MLFLOW_TRACKING_URI"] = args.mlflow_uri
    env_vars["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(args.report_interval)
    # a driver's own ray.init(runtime_env=...) may set the same keys: let it win instead of failing
    env_vars["RAY_OVERRIDE_JOB_RUNTIME_ENV"] = "1"
    return {"working_dir": str(root), "excludes": excludes, "env_vars": env_vars}


def connect(address: str, token: str) -> Any:
    """A JobSubmissionClient that sends the bearer token (checked on connect)."""
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})


def follow(client: Any, job_id: str) -> None:
    """Print the job's output as it comes, until the job ends."""

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            print(chunk, end="", flush=True)

    asyncio.run(tail())


def final_status(client: Any, job_id: str) -> int:
    """Print the job's status line; 0 unless it FAILED or was STOPPED."""
    info = client.get_job_info(job_id)
    status = str(info.status)
    first = (info.message or "").strip().splitlines()
    msg = f" ({first[0]})" if first and status != "SUCCEEDED" else ""
    print(f"cluster.submit: job {job_id} {status}{msg}")
    return 1 if status in ("FAILED", "STOPPED") else 0


def run(args: argparse.Namespace, entry: list[str]) -> int:
    _, token = read_token(args.token_path)
    if args.command:
        client = connect(args.address, token)
        if args.command == "status":
            return final_status(client, args.job_id)
        if args.command == "stop":
            stopped = client.stop_job(args.job_id)
            what = "stop requested" if stopped else "was not running"
            print(f"cluster.submit: job {args.job_id} {what}")
            return 0
        if args.follow:
            follow(client, args.job_id)
        else:
            print(client.get_job_logs(args.job_id), end="")
        return 0
    renv = runtime_env(args)
    client = connect(args.address, token)
    entrypoint = shlex.join(entry)
    job_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env=renv,
        submission_id=args.submission_id,
        metadata={"submitted_by": "cluster.submit"},
    )
    print(f"cluster.submit: job {job_id} submitted to {args.address}: {entrypoint}", flush=True)
    if args.no_wait:
        print(
            f"cluster.submit: follow with: python -m cluster.submit --address {args.address} "
            f"--token-path {os.environ['RAY_AUTH_TOKEN_PATH']} logs --follow {job_id}"
        )
        return 0
    try:
        follow(client, job_id)
    except KeyboardInterrupt:
        print(
            f"\ncluster.submit: stopped following; job {job_id} keeps running (python -m cluster.submit stop {job_id})",
            file=sys.stderr,
        )
        return 130
    return final_status(client, job_id)


def main(argv: list[str] | None = None) -> int:
    try:
        args, entry = parse_args(sys.argv[1:] if argv is None else argv)
        return run(args, entry)
    except UsageError as e:
        print(f"cluster.submit: error: {e}", file=sys.stderr)
    except Exception as e:  # connection, authentication, unknown job: one line, not a traceback
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"cluster.submit: error: {type(e).__name__}: {first}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
