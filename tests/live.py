"""A real infoshare server process on a free loopback port, driven over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from .pg import free_port

BIN = Path(sys.executable).parent


def cli(env: dict[str, str], *args: str, input: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "infoshare"), *args], env=env, input=input,
                            capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"infoshare {' '.join(args)} failed: {result.stderr}")
    return result


def service_env(data_dir: Path, database_url: str = "", **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFOSHARE_")}
    env.update(INFOSHARE_DATA_DIR=str(data_dir), INFOSHARE_DATABASE_URL=database_url,
               INFOSHARE_AUTH_SCRYPT_LOG2_N="10", **settings)
    return env


class LiveServer:
    def __init__(self, env: dict[str, str], workers: int = 2, port: int | None = None):
        self.env = env
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.taxii = f"{self.base}/taxii2/"
        self.api_root = f"{self.base}/taxii2/infoshare/"
        Path(env["INFOSHARE_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        self.log = open(Path(env["INFOSHARE_DATA_DIR"]) / "server.log", "w")
        self.process = subprocess.Popen(
            [str(BIN / "infoshare"), "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", str(workers)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.read_log()}")
            try:
                if requests.get(self.base + "/healthz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.read_log()}")

    def read_log(self) -> str:
        return (Path(self.env["INFOSHARE_DATA_DIR"]) / "server.log").read_text()[-3000:]

    def add_principal(self, name: str, *args: str, password: str | None = None) -> dict:
        extra = ["--password-stdin"] if password else []
        result = cli(self.env, "principals", "add", name, *args, *extra,
                     input=(password + "\n") if password else None)
        return json.loads(result.stdout)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
