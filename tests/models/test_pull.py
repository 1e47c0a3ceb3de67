"""`wave models pull` through the real huggingface_hub client against a hub served on 127.0.0.1.

Each failure must end in one clear line (exit 2, no traceback) and leave no model folder, and no
half file under a final name, where a good one is expected.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from models_support import Hub, serve_hub, tiny_gguf

from support import Ran, run_cli
from waveidp.models import ModelStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hub() -> Iterator[Hub]:
    with serve_hub(Hub()) as h:
        yield h


@pytest.fixture
def env(hub: Hub, tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "WAVE_MODELS_DIR"))}
    return {
        **e,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),  # no saved login, no cache of the developer's
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",
    }


@pytest.fixture
def wave(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Ran]:
    """`wave ...` in this process, with the test hub as HF_ENDPOINT."""
    for k in [k for k in os.environ if k.startswith("HF_") or k == "WAVE_MODELS_DIR"]:
        monkeypatch.delenv(k)
    for k in ("HF_ENDPOINT", "HF_HOME", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.setenv(k, env[k])
    return functools.partial(run_cli, capsys)


def store_of() -> ModelStore:
    return ModelStore(Path(os.environ["WAVE_HOME"]) / "models")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_gguf(tmp_path / "Tiny-Llama-F32.gguf", vocab=4096, hidden=128)  # ~4.9 MB


# huggingface_hub writes what it receives in chunks of this size: a download cut short keeps the
# whole chunks, so resuming shows only past the first one
CHUNK = 10 * 1024 * 1024


@pytest.fixture
def larger(tmp_path: Path) -> Path:
    return tiny_gguf(tmp_path / "Larger-F32.gguf", vocab=24576, hidden=128, seed=2)  # ~26 MB


def test_pull_packaged_smollm2_then_size_and_fit_it(
    hub: Hub, wave: Callable[..., Ran], smollm2_path: Path, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: apache-2.0\n---\n# SmolLM2\n")
    repo = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
    commit = hub.add(repo, {smollm2_path.name: smollm2_path, "README.md": readme})
    result = wave("models", "pull", "hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "--json")
    assert result.code == 0, result.err
    manifest = json.loads(result.out)
    assert manifest["name"] == "smollm2-135m-instruct-q4_1"
    assert manifest["source"]["revision"] == commit
    assert (manifest["architecture"], manifest["quant"], manifest["license"]) == (
        "llama",
        "q4_1",
        "apache-2.0",
    )
    weights = next(f for f in manifest["files"] if f["path"] == smollm2_path.name)
    assert weights["sha256"] == hub.repos[repo].commits[commit][smollm2_path.name].sha256
    stored = store_of().get("smollm2-135m-instruct-q4_1")
    assert stored.weights_path.read_bytes() == smollm2_path.read_bytes()
    assert not (stored.weights_path.stat().st_mode & 0o222), "store files are read-only"

    # the architecture comes from the pulled file's own header
    size = wave("size", "-m", "smollm2-135m-instruct-q4_1", "-d", "cpu-generic", "--json")
    assert size.code == 0, size.err
    assert json.loads(size.out)["quant"] == "q4_1"
    fit = wave("fit", "-m", "smollm2-135m-instruct-q4_1", "--json")
    assert fit.code == 0, fit.err
    assert {r["model"] for r in json.loads(fit.out)} == {"smollm2-135m-instruct-q4_1"}

    # pulling again downloads nothing: one API call, no file request
    before = len(hub.requests)
    again = wave("models", "pull", "hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    assert again.code == 0, again.err
    assert "already up to date" in again.out
    assert [p for _m, p, _r in hub.requests[before:]] == [f"/api/models/{repo}"]


def test_pull_gemma_by_glob_from_a_revision(
    hub: Hub, wave: Callable[..., Ran], gemma_path: Path, tiny: Path
) -> None:
    commit = hub.add("google/gemma-3-270m-GGUF", {gemma_path.name: gemma_path, "other-Q8_0.gguf": tiny})
    hub.repos["google/gemma-3-270m-GGUF"].refs["v1"] = commit
    result = wave("models", "pull", "hf://google/gemma-3-270m-GGUF@v1:*q4_k_m.gguf")
    assert result.code == 0, result.err
    m = store_of().get("gemma-3-270m-q4_k_m")
    assert (m.manifest.architecture, m.manifest.source.revision) == ("gemma3", commit)
    assert [f.path for f in m.manifest.files] == [gemma_path.name]
    assert m.manifest.params == 268_098_176  # from the file's own tensor table


def test_a_dropped_connection_resumes_with_a_range_request(
    hub: Hub, wave: Callable[..., Ran], larger: Path
) -> None:
    hub.add("org/larger", {larger.name: larger})
    hub.drop[larger.name] = [CHUNK + 3_000_000]  # the first GET stops 3 MB into the second chunk
    result = wave("models", "pull", "hf://org/larger")
    assert result.code == 0, result.err
    assert hub.gets(larger.name) == [None, f"bytes={CHUNK}-"]
    assert store_of().get("larger-f32").weights_path.read_bytes() == larger.read_bytes()


def test_ctrl_c_keeps_the_partial_and_the_next_pull_resumes(
    hub: Hub, wave: Callable[..., Ran], env: dict[str, str], larger: Path
) -> None:
    hub.add("org/larger", {larger.name: larger})
    hub.stall[larger.name] = CHUNK + 1_000_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "waveidp", "models", "pull", "hf://org/larger"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a pytest started in the background passes SIGINT on ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    part = Path(os.environ["WAVE_HOME"]) / "models" / ".partial" / "larger-f32" / f"{larger.name}.part"
    deadline = time.monotonic() + 60
    while not (part.is_file() and part.stat().st_size >= CHUNK):
        assert proc.poll() is None and time.monotonic() < deadline, "the pull never got its first bytes"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert part.stat().st_size == CHUNK
    assert not store_of().has("larger-f32")

    hub.stall.clear()
    hub.release.set()
    result = wave("models", "pull", "hf://org/larger")
    assert result.code == 0, result.err
    assert hub.gets(larger.name)[-1] == f"bytes={CHUNK}-"
    assert store_of().get("larger-f32").weights_path.read_bytes() == larger.read_bytes()
    assert not part.exists()


def test_a_corrupted_byte_is_detected_and_nothing_is_kept(
    hub: Hub, wave: Callable[..., Ran], tiny: Path
) -> None:
    hub.add("org/tiny", {tiny.name: tiny})
    hub.corrupt[tiny.name] = 3_000_000
    text = wave("models", "pull", "hf://org/tiny").error
    assert "sha256" in text and "does not match the hub's" in text and tiny.name in text
    staging = Path(os.environ["WAVE_HOME"]) / "models" / ".partial" / "tiny-llama-f32"
    assert not store_of().has("tiny-llama-f32")
    assert not list(staging.glob("*.gguf*")), "the corrupt bytes were deleted"

    hub.corrupt.clear()  # the next pull starts over and succeeds
    assert wave("models", "pull", "hf://org/tiny").code == 0


def test_a_missing_file_and_a_missing_revision_say_so(hub: Hub, wave: Callable[..., Ran], tiny: Path) -> None:
    hub.add("org/tiny", {tiny.name: tiny})
    hub.missing.add(tiny.name)
    text = wave("models", "pull", "hf://org/tiny").error
    assert f"{tiny.name} is listed but the hub has no such file" in text
    assert not store_of().has("tiny-llama-f32")

    text = wave("models", "pull", "hf://org/tiny@v9").error
    assert "revision 'v9' does not exist in org/tiny" in text
    text = wave("models", "pull", "hf://org/nothing-here").error
    assert "repository org/nothing-here not found" in text
    text = wave("models", "pull", "hf://org/tiny:*.safetensors").error
    assert "no file of org/tiny matches '*.safetensors'" in text and tiny.name in text
    assert store_of().models() == []


def test_a_private_repository_needs_the_token_from_a_file(
    hub: Hub, wave: Callable[..., Ran], tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add("org/private", {tiny.name: tiny}, token="hf_secret_token")
    text = wave("models", "pull", "hf://org/private").error
    assert "not found (or private)" in text and "HF_TOKEN" in text
    token = tmp_path / "hf-token"
    token.write_text("hf_secret_token\n")
    monkeypatch.setenv("HF_TOKEN_FILE", str(token))
    result = wave("models", "pull", "hf://org/private")
    assert result.code == 0, result.err
    assert "hf_secret_token" not in result.out + result.err


def test_identical_bytes_are_never_downloaded_twice(hub: Hub, wave: Callable[..., Ran], tiny: Path) -> None:
    hub.add("org/first", {tiny.name: tiny})
    hub.add("org/second", {"renamed.gguf": tiny})
    assert wave("models", "pull", "hf://org/first", "--name", "first").code == 0
    result = wave("models", "pull", "hf://org/second", "--name", "second")
    assert result.code == 0, result.err
    assert hub.gets("renamed.gguf") == [] and len(hub.gets(tiny.name)) == 1
    store = store_of()
    assert store.get("first").weights_path.stat().st_ino == store.get("second").weights_path.stat().st_ino
    # removing one keeps the other's bytes (and frees nothing while they are shared)
    rm = wave("models", "rm", "first")
    assert rm.code == 0 and "(0.0 MB freed)" in rm.out
    assert store.get("second").weights_path.read_bytes() == tiny.read_bytes()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MB tmpfs for the store (CI runs as root); skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_no_space_is_refused_before_the_download_with_the_numbers(
    hub: Hub, wave: Callable[..., Ran], tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVE_MODELS_DIR", str(small_disk))
    big = tiny_gguf(tmp_path / "Big.gguf", vocab=16384, hidden=128, seed=1)  # ~17 MB > 12 MB
    hub.add("org/big", {big.name: big})
    text = wave("models", "pull", "hf://org/big").error
    assert (
        f"not enough disk space for hf://org/big (1 files): needs {big.stat().st_size / 1e6:,.1f} MB" in text
    )
    assert "MB free on" in text
    assert hub.gets(big.name) == [], "nothing was downloaded"


def test_a_disk_that_fills_during_the_download_keeps_a_resumable_partial(
    hub: Hub, wave: Callable[..., Ran], tiny: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVE_MODELS_DIR", str(small_disk))
    hub.add("org/tiny", {tiny.name: tiny})

    def another_writer_fills_the_disk(_path: str) -> None:
        free = shutil.disk_usage(small_disk).free
        (small_disk / "filler").write_bytes(b"\0" * (free - 1_000_000))

    hub.on_get = another_writer_fills_the_disk
    text = wave("models", "pull", "hf://org/tiny").error
    assert "the disk filled while writing" in text and "run the pull again: it resumes" in text
    assert not (small_disk / "tiny-llama-f32").exists()
    kept = (small_disk / ".partial" / "tiny-llama-f32" / f"{tiny.name}.part").stat().st_size
    hub.on_get = None
    (small_disk / "filler").unlink()
    result = wave("models", "pull", "hf://org/tiny")
    assert result.code == 0, result.err
    assert hub.gets(tiny.name)[-1] == (f"bytes={kept}-" if kept else None), "the second pull resumed"
    assert ModelStore(small_disk).get("tiny-llama-f32").weights_path.read_bytes() == tiny.read_bytes()
