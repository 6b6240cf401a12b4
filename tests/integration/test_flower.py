"""``gnn-service flower``: never without a password; basic auth enforced on a real server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.launcher import free_port

CliRunner = Callable[..., Any]


def test_flower_refuses_to_start_without_a_password(
    gnn_cli: CliRunner, redis_env: dict[str, str]
) -> None:
    done = gnn_cli("flower", env=redis_env)
    assert done.returncode == 2
    assert "GNN_SECURITY__FLOWER_PASSWORD" in done.stderr


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if Flower is still shutting down (it may be waiting on a
    worker inspection) after 20 s."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _status(url: str, auth: tuple[str, str] | None) -> int:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_flower_serves_only_with_the_configured_credentials(
    redis_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GNN_")},
        **redis_env,
        "GNN_DATA_DIR": str(tmp_path),
        "GNN_SECURITY__FLOWER_PORT": str(port),
        "GNN_SECURITY__FLOWER_USER": "operator",
        "GNN_SECURITY__FLOWER_PASSWORD": "s3cret-pass",
    }
    log = (tmp_path / "flower.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "flower"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status = _status(url, None)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "flower.log").read_text()
                assert time.monotonic() < deadline, "Flower never listened"
                time.sleep(0.2)
        assert status == 401
        assert _status(url, ("operator", "wrong")) == 401
        assert _status(url, ("operator", "s3cret-pass")) == 200
        assert _status(f"{url}metrics", ("operator", "s3cret-pass")) == 200
    finally:
        stop(process)
        log.close()
    assert "s3cret-pass" not in (tmp_path / "flower.log").read_text()
