"""Where a run came from: git state, upstream DVC stages, params, data and code fingerprints.

Everything here is deterministic for the same inputs, so a run's fingerprint can link `train`
to `register` without writing run ids (which differ on every machine) into DVC-hashed files.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# What the pipeline itself writes: a change there is not an edit of the experiment.
PIPELINE_WRITES = ("dvc.lock", "reports/metrics/", "reports/plots/", "models/runs/")


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """The md5 of a file, as DVC records it for a file output in dvc.lock."""
    return file_digest(path, "md5")


def tree_md5(paths: Iterable[Path], base: Path) -> str:
    """One md5 over the .py/.sql files under `paths`: their names relative to `base` and their
    bytes, in sorted order (the same on every clone)."""
    files: set[Path] = set()
    for root in paths:
        files |= {root} if root.is_file() else {*root.rglob("*.py"), *root.rglob("*.sql")}
    digest = hashlib.md5()
    for f in sorted(files):
        if "__pycache__" not in f.parts:
            digest.update(f.relative_to(base).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def stable_hash(payload: Any) -> str:
    """A sha256 of `payload` as canonical JSON (sorted keys)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout


def git_state() -> dict[str, str]:
    """`git.sha` (HEAD) and `git.changed`: tracked files that differ from HEAD, leaving out
    what the pipeline writes, so the edit-params-then-repro loop is recorded as what it is."""
    try:
        sha = _git("rev-parse", "HEAD").strip()
        changed = _git("diff", "--name-only", "HEAD").split()
    except (OSError, subprocess.SubprocessError):
        return {"git.sha": "unknown", "git.changed": ""}
    edits = sorted(f for f in changed if not f.startswith(PIPELINE_WRITES))
    listed = ",".join(edits)
    if len(listed) > 4000:
        listed = listed[:3990] + ",..."
    return {"git.sha": sha, "git.changed": listed}


def dvc_stage_hashes(lock_path: Path, stages: Iterable[str]) -> dict[str, str]:
    """For each named stage in dvc.lock, the md5 of its lock entry (deps, params and outs)."""
    try:
        lock = yaml.safe_load(lock_path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    entries: Mapping[str, Any] = lock.get("stages", {})
    return {
        f"dvc.stage.{name}": stable_hash(entries[name])[:32] for name in stages if name in entries
    }


def dvc_experiment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The DVC experiment this process runs in (`dvc exp run` sets these), or {}."""
    env = os.environ if environ is None else environ
    baseline = env.get("DVC_EXP_BASELINE_REV", "")
    if not baseline:
        return {}
    return {"dvc.exp.baseline": baseline, "dvc.exp.name": env.get("DVC_EXP_NAME", "")}


def in_dvc_experiment(environ: Mapping[str, str] | None = None) -> bool:
    """True under `dvc exp run` (experiments register as candidates only)."""
    return bool(dvc_experiment(environ))
