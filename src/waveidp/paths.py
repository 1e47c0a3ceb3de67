"""Where Wave keeps its state on this machine, and how its private files are made.

Files that hold secrets or what clients sent (keys.db, audit.db, gateway.key, an audit export)
are created readable by their owner only from the first byte: a file created with the umask's
0644 and chmod'ed afterwards can be opened by another local user in between, and SQLite's
`-wal`/`-shm` files, which take their database's mode when SQLite creates them, would be 0644 too.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def wave_home() -> Path:
    """`WAVE_HOME`, default `~/.local/share/wave`; created (mode 0700) on first use."""
    home = Path(os.environ.get("WAVE_HOME") or Path.home() / ".local" / "share" / "wave")
    home.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    return home


def private_file(path: Path) -> Path:
    """`path`, created empty with mode 0600 when missing; an existing one (and the `-wal`/`-shm`
    of an SQLite database at `path`, which SQLite then creates with the same mode) made 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # one made by an older version or by hand
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(PRIVATE_FILE)
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, a file readable by its owner only from its creation."""
    fd = os.open(private_file(path), os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def models_dir() -> Path:
    """The model store: `WAVE_MODELS_DIR`, default `WAVE_HOME/models` (not created here)."""
    return Path(os.environ.get("WAVE_MODELS_DIR") or wave_home() / "models").expanduser()
