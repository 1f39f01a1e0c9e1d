"""Virtual environments for the peer frameworks, under ``.bench/peers/`` (gitignored).

Each peer gets its own ``python3.11 -m venv`` (or the Python version its pins need) with its
packages pip-installed, so no peer ever enters the project's dependencies (or another
peer's). A venv is created once and reused; a marker file records the interpreter and what
was installed, so changing either rebuilds it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
VENVS = ROOT / ".bench" / "peers"
PYTHON = os.environ.get("ASYNCTASQ_BENCH_PYTHON", "python3.11")


class VenvError(RuntimeError):
    """A peer's environment could not be created (the message says why)."""


def interpreter(version: str | None) -> str:
    """A command that runs Python `version` ("3.12"), or the default `PYTHON` for None.

    ``python3.12`` on the PATH may be a pyenv shim that refuses to run a version other than
    the selected one, so each candidate is tried, then pyenv's own installs.

    Raises:
        VenvError: no working interpreter of that version was found.
    """
    if version is None:
        return PYTHON
    override = os.environ.get(f"ASYNCTASQ_BENCH_PYTHON{version.replace('.', '')}")
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [
        *([override] if override else []),
        f"python{version}",
        *sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True),
    ]
    for candidate in candidates:
        try:
            ran = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ran.returncode == 0 and ran.stdout.strip() == version:
            return candidate
    raise VenvError(f"no Python {version} found (tried {', '.join(candidates)})")


def venv_python(name: str) -> Path:
    """The interpreter of peer `name`'s environment (it may not exist yet)."""
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, packages: tuple[str, ...], version: str | None = None) -> Path:
    """Create (once) the environment of peer `name` with `packages` on Python `version`
    (None: the default `PYTHON`); its interpreter.

    Raises:
        VenvError: venv or pip failed; the message ends with pip's last lines.
    """
    home = VENVS / name
    marker = home / "installed.txt"
    # The marker names the version only when one is asked for, so the existing 3.11
    # environments stay valid.
    wanted = "\n".join(packages) + "\n" + (f"python {version}\n" if version else "")
    python = venv_python(name)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    print(f"bench: creating .bench/peers/{name} ({', '.join(packages)})", flush=True)
    steps = [
        [interpreter(version), "-m", "venv", str(home)],
        [str(python), "-m", "pip", "install", "--quiet", "--retries", "10", *packages],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            shutil.rmtree(home, ignore_errors=True)
            raise VenvError(f"{' '.join(step[:4])} ... failed:\n{tail}")
    marker.write_text(wanted)
    return python


def main() -> None:
    """``python -m scripts.bench.peers.venvs NAME PKG...``: build one environment (the
    Python version from ``ASYNCTASQ_BENCH_PEER_PYTHON``, e.g. 3.12, default 3.11)."""
    name, *packages = sys.argv[1:]
    print(ensure_venv(name, tuple(packages), os.environ.get("ASYNCTASQ_BENCH_PEER_PYTHON")))


if __name__ == "__main__":
    main()
