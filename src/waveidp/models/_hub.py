"""`wave models pull hf://ORG/REPO[@REV][:GLOB]`: files from a Hugging Face hub into the store.

Through the real `huggingface_hub` client: `HfApi.model_info(files_metadata=True)` lists the
revision's files with their sizes and LFS sha256; `get_hf_file_metadata` follows the resolve URL's
redirects; `http_get` streams the bytes (and retries a dropped connection from where it stopped).
The client deletes a partial download when its process ends, so the partial file is Wave's own
(`<file>.part` in the store's `.partial/<name>/`): a pull interrupted by Ctrl-C or a lost
connection resumes with an HTTP Range request the next time. Every file is checked against the
hub's LFS sha256 (or the git blob id of a small file) before it counts.

`HF_ENDPOINT` points at a mirror; the token comes from `HF_TOKEN`, `HF_TOKEN_FILE` or
`HF_TOKEN_VAULT` as the gateway's secrets do (else the client's saved login).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from waveidp.catalog._hf_config import slug_id
from waveidp.catalog.store_manifest import Source, StoredFile
from waveidp.errors import InputError, WaveError
from waveidp.models._describe import describe, main_file
from waveidp.models._store import (
    ModelStore,
    NoSpaceError,
    StoredModel,
    check_name,
    ensure_space,
    file_name_slug,
    place_file,
    sha256_file,
)

_URI = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[^:@]+))?(?::(?P<glob>.+))?$")
PART = ".part"


class HubError(WaveError):
    """The hub refused or failed a request (repository, revision or file missing, access, network)."""


class ChecksumError(WaveError):
    """A downloaded file's bytes do not match the hash the hub published for it."""


@dataclass(frozen=True)
class HubRef:
    repo: str
    revision: str | None
    patterns: tuple[str, ...]

    @property
    def uri(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        glob = f":{','.join(self.patterns)}" if self.patterns else ""
        return f"hf://{self.repo}{rev}{glob}"


def parse_uri(text: str) -> HubRef:
    m = _URI.match(text.strip())
    if not m:
        raise InputError(
            f"not a hub reference: {text!r}",
            where="MODEL",
            fix="write hf://ORG/REPO[@REVISION][:FILE-GLOB], e.g. hf://bartowski/SmolLM2-135M-Instruct-GGUF:*Q4_K_M.gguf",
        )
    patterns = tuple(p for p in (m.group("glob") or "").split(",") if p)
    return HubRef(m.group("repo"), m.group("rev"), patterns)


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files
    git_sha1: str | None  # small files stored in git: the blob id

    def check(self, local: Path) -> str:
        """The file's sha256 after checking it against what the hub published; raises on a mismatch."""
        sha256 = sha256_file(local)
        if self.sha256 and sha256 != self.sha256:
            raise ChecksumError(
                f"{self.path}: sha256 {sha256[:12]}… does not match the hub's {self.sha256[:12]}…; "
                "the corrupt download was deleted",
                fix="run the pull again",
            )
        if not self.sha256 and self.git_sha1 and _git_blob_sha1(local) != self.git_sha1:
            raise ChecksumError(
                f"{self.path}: git blob id does not match the hub's {self.git_sha1[:12]}…; "
                "the corrupt download was deleted",
                fix="run the pull again",
            )
        return sha256


@dataclass
class PullPlan:
    ref: HubRef
    commit: str
    name: str
    files: list[RemoteFile]
    license: str | None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class PullProgress:
    """What a pull reports while it works; the CLI draws it with Rich."""

    def file_started(self, path: str, size: int, done: int, how: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def file_done(self, path: str) -> None: ...


def _token() -> str | None:
    from waveidp.security.secrets import resolve

    secret = resolve("HF_TOKEN", required=False)
    return secret.reveal() if secret else None


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


@contextlib.contextmanager
def _hub_errors(ref: HubRef, what: str) -> Iterator[None]:
    from huggingface_hub import errors as hf

    net = _transport_errors()
    where = ref.uri
    try:
        yield
    except hf.GatedRepoError:
        raise HubError(
            f"{ref.repo} is gated", where=where, fix="accept its terms on the hub page and set HF_TOKEN"
        ) from None
    except hf.RepositoryNotFoundError:
        raise HubError(
            f"repository {ref.repo} not found (or private)",
            where=where,
            fix="check the name; for a private repository set HF_TOKEN, HF_TOKEN_FILE or HF_TOKEN_VAULT",
        ) from None
    except hf.RevisionNotFoundError:
        raise HubError(
            f"revision {ref.revision!r} does not exist in {ref.repo}",
            where=where,
            fix="use a branch, tag or commit of the repository",
        ) from None
    except hf.RemoteEntryNotFoundError:
        raise HubError(f"{what} is listed but the hub has no such file", where=where) from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise HubError(f"the hub answered HTTP {status} for {what}", where=where) from None
    except net as exc:
        raise HubError(
            f"cannot reach the hub at {_endpoint() or 'https://huggingface.co'} for {what} "
            f"({type(exc).__name__}: {exc})",
            where=where,
            fix="check the network or HF_ENDPOINT, then run the pull again: it resumes",
        ) from None


def _transport_errors() -> tuple[type[BaseException], ...]:
    import importlib

    try:
        transport = importlib.import_module("httpx2")  # huggingface_hub >= 2
    except ImportError:
        transport = importlib.import_module("httpx")
    return (transport.TransportError,)


def plan_pull(store: ModelStore, uri: str, name: str | None = None) -> PullPlan:
    """Resolve the revision to a commit and list the files to fetch (one API call, no download)."""
    from huggingface_hub import HfApi

    ref = parse_uri(uri)
    api = HfApi(endpoint=_endpoint(), token=_token())
    with _hub_errors(ref, "the file list"):
        info = api.model_info(ref.repo, revision=ref.revision, files_metadata=True)
    siblings = list(info.siblings or [])
    chosen = [s for s in siblings if not ref.patterns or _matches(s.rfilename, ref.patterns)]
    if not chosen:
        ggufs = [s.rfilename for s in siblings if s.rfilename.endswith(".gguf")]
        listing = ", ".join((ggufs or [s.rfilename for s in siblings])[:8])
        raise HubError(
            f"no file of {ref.repo} matches {','.join(ref.patterns)!r}",
            where=ref.uri,
            fix=f"files there: {listing}" if listing else "the repository is empty",
        )
    files = [
        RemoteFile(
            path=s.rfilename,
            size=int(s.lfs.size if s.lfs else (s.size or 0)),
            sha256=s.lfs.sha256 if s.lfs else None,
            git_sha1=s.blob_id if not s.lfs else None,
        )
        for s in chosen
    ]
    try:
        main_file([f.path for f in files])
    except WaveError as exc:
        raise HubError(exc.what, where=ref.uri, fix=exc.fix) from None
    if name is None:
        ggufs = [f.path for f in files if f.path.endswith(".gguf")]
        name = file_name_slug(Path(ggufs[0]).stem) if len(ggufs) == 1 else slug_id(ref.repo)
    license = None
    card = getattr(info, "card_data", None)
    if card is not None:
        license = card.get("license") if hasattr(card, "get") else getattr(card, "license", None)
    commit = info.sha or ref.revision or "main"
    return PullPlan(ref, commit, check_name(name), files, str(license) if license else None)


def pull(store: ModelStore, plan: PullPlan, progress: PullProgress | None = None) -> tuple[StoredModel, int]:
    """Fetch what is missing, verify everything, and commit the model; returns it and the bytes downloaded."""
    progress = progress or PullProgress()
    if store.has(plan.name):
        current = store.get(plan.name).manifest
        same = {(f.path, f.size) for f in current.files} == {(f.path, f.size) for f in plan.files}
        if current.source.revision == plan.commit and same:
            return store.get(plan.name), 0  # already there, verified when it was committed
    staging = store.staging(plan.name)
    actions = [(f, _how(store, staging, f)) for f in plan.files]
    to_fetch = sum(f.size - _part_bytes(staging, f) for f, how in actions if how == "download")
    ensure_space(staging, to_fetch, f"{plan.ref.uri} ({len(plan.files)} files)")
    stored: list[StoredFile] = []
    fetched = 0
    for f, how in actions:
        target = staging / f.path
        if how == "staged":
            progress.file_started(f.path, f.size, f.size, "already downloaded")
        elif how == "download":
            progress.file_started(f.path, f.size, _part_bytes(staging, f), "download")
            fetched += _download(plan, f, staging, progress)
        else:
            found = store.find_sha256(f.sha256 or "", f.size)
            assert found is not None
            progress.file_started(f.path, f.size, 0, f"same bytes as {found.parent.name}")
            place_file(found, target, progress=progress.advance)
        try:
            sha256 = f.check(target)
        except ChecksumError:
            target.unlink(missing_ok=True)
            raise
        stored.append(StoredFile(path=f.path, sha256=sha256, size=f.size))
        progress.file_done(f.path)
    source = Source(kind="hf", uri=plan.ref.uri, repo=plan.ref.repo, revision=plan.commit)
    manifest = describe(staging, stored, name=plan.name, source=source, license=plan.license)
    return store.commit(staging, manifest), fetched


def _how(store: ModelStore, staging: Path, f: RemoteFile) -> str:
    target = staging / f.path
    if target.is_file() and target.stat().st_size == f.size:
        return "staged"
    if f.sha256 and store.find_sha256(f.sha256, f.size) is not None:
        return "link"
    return "download"


def _part_bytes(staging: Path, f: RemoteFile) -> int:
    part = staging / (f.path + PART)
    with contextlib.suppress(OSError):
        return min(part.stat().st_size, f.size)
    return 0


def _download(plan: PullPlan, f: RemoteFile, staging: Path, progress: PullProgress) -> int:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    token = _token()
    endpoint = _endpoint()
    url = hf_hub_url(plan.ref.repo, f.path, revision=plan.commit, endpoint=endpoint)
    with _hub_errors(plan.ref, f.path):
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
    headers = build_hf_headers(token=token)
    if meta.location and _host(meta.location) != _host(url):
        headers.pop("authorization", None)  # a signed CDN URL: the hub token stays with the hub
    part = staging / (f.path + PART)
    part.parent.mkdir(parents=True, exist_ok=True)
    resume = _part_bytes(staging, f)
    if part.exists() and part.stat().st_size > f.size:
        part.unlink()
        resume = 0
    try:
        with part.open("ab") as raw, _hub_errors(plan.ref, f.path):
            http_get(
                meta.location or url,
                _Counting(raw, progress.advance),  # type: ignore[arg-type]
                resume_size=resume,
                headers=headers,
                expected_size=f.size,
                displayed_filename=f.path,
                tqdm_class=_silent_tqdm(),
            )
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise NoSpaceError(
                f"the disk filled while writing {f.path}: {part.stat().st_size / 1e6:,.1f} of "
                f"{f.size / 1e6:,.1f} MB kept in {part.parent}",
                fix="free space and run the pull again: it resumes; `wave models rm NAME` drops the partial",
            ) from None
        if "Consistency check failed" in str(exc):
            part.unlink(missing_ok=True)
            raise HubError(
                f"{f.path}: the hub sent a different number of bytes than it announced "
                f"({f.size:,}); the partial file was deleted",
                where=plan.ref.uri,
                fix="run the pull again",
            ) from None
        raise
    part.replace(staging / f.path)  # checked by the caller like every other file of the pull
    return f.size - resume


class _Counting:
    """The file object `http_get` writes to, counting bytes for the progress bar."""

    def __init__(self, raw: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_bytes = on_bytes

    def write(self, data: bytes) -> int:
        n = self._raw.write(data)
        self._on_bytes(len(data))
        return n

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._raw, attr)


def _silent_tqdm() -> type:
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in patterns)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
