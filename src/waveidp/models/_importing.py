"""`wave models import PATH`: a local .gguf file, or a folder (config.json + weights, or one .gguf).

Files are copied, not linked: the store makes its files read-only, and a hard link would make the
user's own file read-only too. Bytes the store already holds (same sha256) are linked from there.
"""

from __future__ import annotations

import os
from pathlib import Path

from waveidp.catalog._hf_config import slug_id
from waveidp.catalog.store_manifest import Source, StoredFile
from waveidp.errors import InputError
from waveidp.models import _store as st
from waveidp.models._describe import describe, main_file

_SKIP_DIRS = {".git", ".cache", "__pycache__"}


def local_files(path: Path) -> tuple[Path, list[str]]:
    """The folder and the relative paths a local model consists of."""
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(
                f"{path} is not a .gguf file",
                where="PATH",
                fix="import a .gguf file, or the folder holding config.json and the weights",
            )
        return path.parent, [path.name]
    if path.is_dir():
        rel = []
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
            for n in sorted(names):
                if not n.startswith("."):
                    rel.append(str((Path(root) / n).relative_to(path)).replace(os.sep, "/"))
        return path, rel
    raise InputError(f"{path} does not exist", where="PATH")


def import_path(
    store: st.ModelStore,
    path: str | Path,
    *,
    name: str | None = None,
    progress: st.Progress | None = None,
    source: Source | None = None,
) -> st.StoredModel:
    src = Path(path).expanduser().resolve()
    folder, rel = local_files(src)
    main_file(rel)  # fails early, before any copy, on a folder that is not one model
    name = st.check_name(name or (st.file_name_slug(src.stem) if src.is_file() else slug_id(src.name)))
    staging = store.staging(name)
    sizes = {r: (folder / r).stat().st_size for r in rel}
    st.ensure_space(staging, sum(sizes.values()), f"importing {src}")
    stored = []
    for r in rel:
        sha256 = st.sha256_file(folder / r)
        existing = store.find_sha256(sha256, sizes[r])
        st.place_file(existing or folder / r, staging / r, link=existing is not None, progress=progress)
        stored.append(StoredFile(path=r, sha256=sha256, size=sizes[r]))
    manifest = describe(staging, stored, name=name, source=source or Source(kind="local", uri=str(src)))
    return store.commit(staging, manifest)
