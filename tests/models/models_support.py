"""A Hugging Face hub on 127.0.0.1 for the real `huggingface_hub` client, and tiny GGUF files.

The server speaks the hub's URL layout as huggingface_hub 1.x/2.x reads it:
- `GET /api/models/{repo}[/revision/{rev}]?blobs=true`: id, sha (the commit), siblings with size,
  blobId (git sha1) and, for LFS files, `lfs: {sha256, size}`, cardData (licence);
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: `X-Repo-Commit`, `ETag`/`X-Linked-Etag` (the sha256 of an
  LFS file), `X-Linked-Size`; an LFS file redirects (302) to `/cdn/{sha256}` as the hub sends
  large files to its CDN; Range requests answer 206;
- errors as `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound` on a 404 (401 for a
  private repository without the token).

Faults a test can set: drop the connection after N bytes of a file (`drop`), serve one flipped byte
(`corrupt`), list a file the resolve endpoint does not have (`missing`), stop sending after N bytes
until released (`stall`), and run a hook when a download starts (`on_get`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import gguf
import numpy as np

LFS_MIN = 1024  # files at least this large are "LFS" files (the hub's rule is about size too)


@dataclass
class HubFile:
    path: Path  # the bytes on disk

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        sha1 = hashlib.sha1(b"blob %d\0" % self.size, usedforsecurity=False)
        with self.path.open("rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
                sha1.update(block)
        self.sha256 = digest.hexdigest()
        self.git_sha1 = sha1.hexdigest()

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def lfs(self) -> bool:
        return self.size >= LFS_MIN


@dataclass
class Repo:
    commits: dict[str, dict[str, HubFile]]  # commit sha -> repo path -> file
    refs: dict[str, str]  # branch/tag -> commit
    license: str | None = "apache-2.0"
    token: str | None = None  # private: requests must carry this bearer token

    def resolve(self, rev: str) -> str | None:
        if rev in self.commits:
            return rev
        return self.refs.get(rev)


@dataclass
class Hub:
    repos: dict[str, Repo] = field(default_factory=dict)
    drop: dict[str, list[int]] = field(default_factory=dict)  # path -> byte counts, one per GET
    corrupt: dict[str, int] = field(default_factory=dict)  # path -> offset of the flipped byte
    missing: set[str] = field(default_factory=set)
    stall: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before waiting
    release: threading.Event = field(default_factory=threading.Event)
    on_get: Callable[[str], None] | None = None
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range
    downloads: list[tuple[str, str | None]] = field(default_factory=list)  # repo path, Range of each GET
    url: str = ""

    def add(self, repo: str, files: dict[str, Path], *, commit: str | None = None, **kw: object) -> str:
        sha = commit or hashlib.sha1(repo.encode() + str(len(self.repos)).encode()).hexdigest()
        entry = self.repos.setdefault(repo, Repo(commits={}, refs={}, **kw))  # type: ignore[arg-type]
        entry.commits[sha] = {p: HubFile(f) for p, f in files.items()}
        entry.refs["main"] = sha
        return sha

    def gets(self, path_suffix: str) -> list[str | None]:
        """The Range headers of every GET of a file's bytes (None for a whole-file GET)."""
        return [r for p, r in self.downloads if p.endswith(path_suffix)]


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        def _error(self, status: int, code: str | None, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _repo(self, name: str) -> Repo | None:
            repo = hub.repos.get(name)
            if repo is None:
                return None
            if repo.token and self.headers.get("authorization") != f"Bearer {repo.token}":
                return None
            return repo

        def _route(self, *, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Range")))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"]:
                return self._api(parts[2:])
            if parts[0] == "cdn" and len(parts) == 2:
                return self._cdn(parts[1], head)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
            self._error(404, None, "no such route")

        def _api(self, parts: list[str]) -> None:
            name = "/".join(parts[:2])
            repo = self._repo(name)
            if repo is None:
                return self._error(401 if name in hub.repos else 404, "RepoNotFound", "Repository not found")
            rev = parts[3] if len(parts) >= 4 and parts[2] == "revision" else "main"
            commit = repo.resolve(rev)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            siblings = []
            for p, f in sorted(repo.commits[commit].items()):
                s: dict[str, object] = {"rfilename": p, "size": f.size, "blobId": f.git_sha1}
                if f.lfs:
                    s["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
                siblings.append(s)
            card = {"license": repo.license} if repo.license else {}
            body = json.dumps(
                {
                    "id": name,
                    "modelId": name,
                    "sha": commit,
                    "siblings": siblings,
                    "cardData": card,
                    "tags": [],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _resolve(self, name: str, rev: str, path: str, head: bool) -> None:
            repo = self._repo(name)
            if repo is None:
                return self._error(401 if name in hub.repos else 404, "RepoNotFound", "Repository not found")
            commit = repo.resolve(rev)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            f = repo.commits[commit].get(path)
            if f is None or path in hub.missing:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if f.lfs:
                self.send_response(302)
                self.send_header("Location", f"{hub.url}/cdn/{f.sha256}?file={path}")
                self.send_header("X-Repo-Commit", commit)
                self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                self.send_header("X-Linked-Size", str(f.size))
                self.send_header("ETag", f'"{f.git_sha1}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._bytes(f, path, head, extra={"X-Repo-Commit": commit, "ETag": f'"{f.git_sha1}"'})

        def _cdn(self, sha256: str, head: bool) -> None:
            for repo in hub.repos.values():
                for files in repo.commits.values():
                    for p, f in files.items():
                        if f.sha256 == sha256:
                            return self._bytes(f, p, head, extra={"ETag": f'"{sha256}"'})
            self._error(404, None, "no such blob")

        def _bytes(self, f: HubFile, path: str, head: bool, extra: dict[str, str]) -> None:
            size = f.size
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0] or 0)
            self.send_response(206 if start else 200)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(size - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()
            if head:
                return
            hub.downloads.append((path, rng))
            if hub.on_get:
                hub.on_get(path)
            drops = hub.drop.get(path)
            limit = drops.pop(0) if drops else None
            stall = hub.stall.get(path)
            sent = start
            with f.path.open("rb") as src:
                src.seek(start)
                while sent < size:
                    block = src.read(min(1 << 16, size - sent))
                    if path in hub.corrupt and sent <= hub.corrupt[path] < sent + len(block):
                        i = hub.corrupt[path] - sent
                        block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1 :]
                    if limit is not None and sent + len(block) > limit:
                        self.wfile.write(block[: max(0, limit - sent)])
                        self.wfile.flush()
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(2)
                        return
                    if stall is not None and sent + len(block) > stall:
                        self.wfile.write(block[: max(0, stall - sent)])
                        self.wfile.flush()
                        hub.release.wait(60)
                        self.close_connection = True
                        return
                    self.wfile.write(block)
                    sent += len(block)

    return Handler


@contextlib.contextmanager
def serve_hub(hub: Hub) -> Iterator[Hub]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.release.set()
        server.shutdown()
        server.server_close()


def tiny_gguf(path: Path, *, vocab: int = 512, hidden: int = 64, seed: int = 0, name: str = "tiny") -> Path:
    """A random-weight llama GGUF (F32): 2 layers, 4 heads (2 KV); `vocab` x `hidden` sets its size."""
    rng = np.random.default_rng(seed)
    ff, layers, heads, kv = 2 * hidden, 2, 4, 2
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_license("mit")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tensors = {
        "token_embd.weight": (vocab, hidden),
        "output_norm.weight": (hidden,),
        "output.weight": (vocab, hidden),
    }
    for i in range(layers):
        for t, dims in {
            "attn_norm": (hidden,),
            "attn_q": (hidden, hidden),
            "attn_k": (kv * head_dim, hidden),
            "attn_v": (kv * head_dim, hidden),
            "attn_output": (hidden, hidden),
            "ffn_norm": (hidden,),
            "ffn_gate": (ff, hidden),
            "ffn_up": (ff, hidden),
            "ffn_down": (hidden, ff),
        }.items():
            tensors[f"blk.{i}.{t}.weight"] = dims
    for t, dims in tensors.items():
        w.add_tensor(t, rng.standard_normal(dims).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
