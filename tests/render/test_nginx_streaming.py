"""The rendered NGINX site, run for real on loopback, passes SSE chunks through as they are written."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from test_real_tools import _self_signed

from support import running
from waveidp.loopback import free_port, wait_http

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]


class _Upstream(BaseHTTPRequestHandler):
    """Sends one SSE event, then holds the response open until the test has read it through NGINX."""

    protocol_version = "HTTP/1.1"
    seen_first = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b"data: first\n\n")
        # With proxy buffering on, "first" would sit in NGINX's buffer and this wait would time out.
        released = self.seen_first.wait(timeout=15)
        self._chunk(b"data: second\n\n" if released else b"data: buffered\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


def test_rendered_site_streams_sse_without_buffering(home_lab_tree: Path, tmp_path: Path) -> None:
    _Upstream.seen_first = threading.Event()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    http_port, https_port = free_port(), free_port()
    site = (home_lab_tree / "sclimers-gateway" / "nginx" / "wave.conf").read_text()
    assert "server 127.0.0.1:4000;" in site and "listen 443 ssl http2;" in site and "listen 80;" in site
    site = (
        site.replace("server 127.0.0.1:4000;", f"server 127.0.0.1:{upstream.server_port};")
        .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
        .replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    )
    conf = tmp_path / "conf"
    _self_signed(conf / "tls")
    (conf / "site.conf").write_text(site)
    (conf / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {tmp_path}/nginx.pid;\nerror_log stderr;\n"
        f"events {{}}\nhttp {{\n  access_log off;\n  include {conf}/site.conf;\n}}\n"
    )
    try:
        with running(
            ["nginx", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf / "nginx.conf")],
            log=tmp_path / "nginx.log",
        ) as proc:
            wait_http(f"http://127.0.0.1:{http_port}/healthz", proc=proc)
            with httpx.Client(verify=False, timeout=20) as client:
                plain = client.get(f"http://127.0.0.1:{http_port}/v1/models", follow_redirects=False)
                assert plain.status_code == 301 and plain.headers["location"].startswith("https://")
                url = f"https://127.0.0.1:{https_port}/v1/chat/completions"
                with client.stream("POST", url, json={"stream": True}) as r:
                    assert r.status_code == 200
                    events = []
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            events.append(line[6:])
                            _Upstream.seen_first.set()
                assert events == ["first", "second"]
                assert client.get(f"https://127.0.0.1:{https_port}/metrics").status_code == 404
    finally:
        upstream.shutdown()
        upstream.server_close()
