"""The local model store: one folder per model under `WAVE_HOME/models` (or `WAVE_MODELS_DIR`).

    root/
      smollm2-135m-instruct-q4_k_m/
        manifest.json                  what, from where, sha256 of every file, quality results
        SmolLM2-135M-Instruct-Q4_K_M.gguf
      .partial/<name>/                 a pull or import in progress (resumable; never listed)

A model appears in the store only when its folder is complete: files are gathered and verified
under `.partial/`, the manifest is written there last, and the folder is renamed into place in one
step. A failed or interrupted pull therefore never leaves a half model where a good one is expected.
Files are made read-only; two models holding the same bytes share one inode (hard link).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from waveidp.catalog.store_manifest import (
    MANIFEST,
    NAME_PATTERN,
    Manifest,
    read_manifest,
    stored_names,
    write_manifest,
)
from waveidp.errors import InputError, NotFoundError, WaveError
from waveidp.paths import models_dir

PARTIAL = ".partial"
_TRASH = ".trash"
_CHUNK = 4 * 1024 * 1024

Progress = Callable[[int], None]


class NoSpaceError(WaveError):
    """The store's file system has less free space than a pull or import needs."""


def store_root(root: str | Path | None = None, *, create: bool = True) -> Path:
    """`root`, else `WAVE_MODELS_DIR`, else `WAVE_HOME/models`."""
    chosen = Path(root).expanduser() if root else models_dir()
    if create:
        chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def file_name_slug(stem: str) -> str:
    """A store name from a weights file's stem: `SmolLM2-135M-Instruct.Q4_1` -> `smollm2-135m-instruct-q4_1`
    (a dot between digits stays: `Llama-3.1-8B`)."""
    from waveidp.catalog._hf_config import slug_id

    return slug_id(re.sub(r"(?<!\d)\.|\.(?!\d)", "-", stem))


def _valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None


def check_name(name: str) -> str:
    if not _valid_name(name):
        raise InputError(
            f"model name {name!r} is not usable",
            where="--name",
            fix="use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class StoredModel:
    folder: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def weights_path(self) -> Path:
        return self.folder / self.manifest.weights

    @property
    def stem(self) -> str:
        """The name without its own format's suffix: `smollm2-135m-instruct-q4_k_m` -> `smollm2-135m-instruct`
        (the name its other formats share)."""
        own = (self.manifest.quant or "").lower()
        if own and self.name.endswith(f"-{own}"):
            return self.name[: -len(own) - 1]
        return self.name


class ModelStore:
    def __init__(self, root: str | Path | None = None, *, create: bool = True) -> None:
        self.root = store_root(root, create=create)

    # -- reading -----------------------------------------------------------------------------

    def models(self) -> list[StoredModel]:
        return [StoredModel(self.root / n, read_manifest(self.root / n)) for n in stored_names(self.root)]

    def has(self, name: str) -> bool:
        return _valid_name(name) and (self.root / name / MANIFEST).is_file()

    def get(self, name: str) -> StoredModel:
        folder = self.root / name
        if not self.has(name):
            names = [m.name for m in self.models()]
            raise NotFoundError("stored model", name, names, where=str(self.root))
        return StoredModel(folder, read_manifest(folder))

    def family(self, name: str) -> list[StoredModel]:
        """`name` and every stored model linked to it by "made from" (quantized from), either way:
        the same weights in different formats, for `wave fit` to choose among."""
        everything = {m.name: m for m in self.models()}
        if name not in everything:
            self.get(name)  # raises NotFoundError with suggestions
        linked: dict[str, set[str]] = {n: set() for n in everything}
        for m in everything.values():
            base = m.manifest.source.base
            if base in everything:
                linked[m.name].add(base)
                linked[base].add(m.name)
        seen, todo = {name}, [name]
        while todo:
            for other in linked[todo.pop()] - seen:
                seen.add(other)
                todo.append(other)
        return [everything[n] for n in sorted(seen)]

    def find_sha256(self, sha256: str, size: int) -> Path | None:
        """A complete file of the store with these bytes (by its manifest), to link instead of downloading."""
        for m in self.models():
            for f in m.manifest.files:
                if f.sha256 == sha256 and f.size == size:
                    path = m.folder / f.path
                    with contextlib.suppress(OSError):
                        if path.stat().st_size == size:
                            return path
        return None

    # -- writing -----------------------------------------------------------------------------

    def staging(self, name: str) -> Path:
        """The folder a pull or import of `name` gathers its files in (kept across interruptions)."""
        folder = self.root / PARTIAL / check_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def commit(self, staging: Path, manifest: Manifest) -> StoredModel:
        """Write the manifest into `staging` and move the folder into place, replacing an older copy."""
        for f in manifest.files:
            with contextlib.suppress(OSError):
                (staging / f.path).chmod(0o444)
        write_manifest(staging, manifest)
        target = self.root / manifest.name
        old = None
        if target.exists():
            old = self.root / _TRASH / f"{manifest.name}.{os.getpid()}"
            old.parent.mkdir(exist_ok=True)
            target.rename(old)
        staging.rename(target)
        if old is not None:
            _remove_tree(old)
        return StoredModel(target, manifest)

    def update(self, model: StoredModel, manifest: Manifest) -> StoredModel:
        write_manifest(model.folder, manifest)
        return StoredModel(model.folder, manifest)

    def remove(self, name: str) -> tuple[StoredModel | None, int]:
        """Remove a model and any unfinished pull of the same name; returns what went and the bytes freed."""
        freed = 0
        partial = self.root / PARTIAL / name
        if _valid_name(name) and partial.is_dir():
            freed += _tree_bytes(partial)
            _remove_tree(partial)
        if not self.has(name):
            if freed:
                return None, freed
            self.get(name)  # raises NotFoundError with suggestions
        model = self.get(name)
        freed += _tree_bytes(model.folder, unique=True)
        trash = self.root / _TRASH / f"{name}.{os.getpid()}"
        trash.parent.mkdir(exist_ok=True)
        model.folder.rename(trash)  # gone from the store in one step, then deleted
        _remove_tree(trash)
        return model, freed

    def partials(self) -> Iterator[tuple[str, int]]:
        base = self.root / PARTIAL
        if base.is_dir():
            for folder in sorted(base.iterdir()):
                yield folder.name, _tree_bytes(folder)


def place_file(source: Path, target: Path, *, link: bool = True, progress: Progress | None = None) -> None:
    """Put `source`'s bytes at `target`: a hard link when allowed and on the same file system, else a
    copy written next to the target and renamed (a crash leaves no half file under the final name)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    if link:
        try:
            os.link(source, target)
            if progress:
                progress(source.stat().st_size)
            return
        except OSError:
            pass
    tmp = target.with_name(f".{target.name}.copy")
    with source.open("rb") as src, tmp.open("wb") as dst:
        while block := src.read(_CHUNK):
            dst.write(block)
            if progress:
                progress(len(block))
    tmp.replace(target)


def ensure_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise NoSpaceError(
            f"not enough disk space for {what}: needs {_mb(needed)}, {_mb(free)} free on {folder}",
            fix=f"free {_mb(needed - free)} or point WAVE_MODELS_DIR at a larger disk",
        )


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _tree_bytes(folder: Path, *, unique: bool = False) -> int:
    total = 0
    for p in folder.rglob("*"):
        with contextlib.suppress(OSError):
            st = p.lstat()
            if p.is_file() and (not unique or st.st_nlink == 1):
                total += st.st_size
    return total


def _remove_tree(folder: Path) -> None:
    def writable(func: Callable[..., object], path: str, _exc: object) -> None:
        os.chmod(os.path.dirname(path), 0o755)
        func(path)

    shutil.rmtree(folder, onerror=writable)
