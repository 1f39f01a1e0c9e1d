"""Virtual environments for the peer frameworks, under ``.bench/peers/`` (gitignored).

Each peer gets its own ``python3.11 -m venv`` with its packages pip-installed, so no peer
ever enters the project's dependencies (or another peer's). A venv is created once and
reused; a marker file records what was installed, so changing a pin rebuilds it.
"""

from __future__ import annotations

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


def venv_python(name: str) -> Path:
    """The interpreter of peer `name`'s environment (it may not exist yet)."""
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, packages: tuple[str, ...]) -> Path:
    """Create (once) the environment of peer `name` with `packages`; its interpreter.

    Raises:
        VenvError: venv or pip failed; the message ends with pip's last lines.
    """
    home = VENVS / name
    marker = home / "installed.txt"
    wanted = "\n".join(packages) + "\n"
    python = venv_python(name)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    print(f"bench: creating .bench/peers/{name} ({', '.join(packages)})", flush=True)
    steps = [
        [PYTHON, "-m", "venv", str(home)],
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
    """``python -m scripts.bench.peers.venvs NAME PKG...``: build one environment."""
    name, *packages = sys.argv[1:]
    print(ensure_venv(name, tuple(packages)))


if __name__ == "__main__":
    main()
