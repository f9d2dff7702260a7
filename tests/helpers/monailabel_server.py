"""A real MONAI Label server for tests: the monaibundle app with this repository's bundles copied in,
started on 127.0.0.1 exactly as the README's "Use with MONAI Label" section says, and stopped by its PID."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import requests
from PIL import Image

from tests.helpers.bundles import BUNDLE_NAMES, BUNDLES

# never copied into the app: what runs leave in a working copy of a bundle
LEFT_BY_RUNS = shutil.ignore_patterns("eval", "train_logs", "__pycache__", "last.pt", "*.tmp")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_app(root: Path) -> Path:
    """``monailabel apps --download --name monaibundle`` + the bundles copied (not linked) into ``model/``."""
    subprocess.run(
        ["monailabel", "apps", "--download", "--name", "monaibundle", "--output", str(root / "apps")],
        check=True,
        capture_output=True,
    )
    app = root / "apps" / "monaibundle"
    for bundle in BUNDLE_NAMES:
        shutil.copytree(BUNDLES / bundle, app / "model" / bundle, ignore=LEFT_BY_RUNS)
    return app


def tree(folder: Path) -> dict[str, float]:
    """Every file under ``folder`` with its modification time (what a request may not touch)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*") if p.is_file()}


class Server:
    """``monailabel start_server`` in its own process group; ``stop`` ends it by its PID."""

    def __init__(self, app: Path, studies: Path, log: Path, port: int | None = None) -> None:
        self.app, self.studies, self.log_path = app, studies, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timings: dict[str, list[float]] = {}
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        models = ",".join(BUNDLE_NAMES)
        return ["monailabel", "start_server", "--app", str(self.app), "--studies", str(self.studies),
                "--conf", "models", models, "--conf", "sam2", "false", "--conf", "zoo_source", "github",
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip

    def start(self, timeout: float = 180.0) -> None:
        self.studies.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(f"{self.url}/info/", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.log()[-3000:]}")

    def stop(self) -> bool:
        """SIGTERM to the server's process group, SIGKILL after 30 s; True once the PID is gone."""
        if self.process is None:
            return True
        pid = self.process.pid
        try:
            os.killpg(pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass
        self._log.close()
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_shows(self, text: str, since: int = 0, timeout: float = 20.0) -> bool:
        """Whether ``text`` appears in the server log after character ``since`` (waits for the log to flush)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[since:]:
                return True
            time.sleep(0.5)
        return False

    # ------------------------------------------------------------------ the HTTP API, as a client uses it
    def info(self) -> dict:
        return requests.get(f"{self.url}/info/", timeout=30).json()

    def put_image(self, image_id: str, path: Path) -> None:
        suffix = "".join(path.suffixes) if path.name.endswith(".nii.gz") else path.suffix
        with open(path, "rb") as handle:
            response = requests.put(
                f"{self.url}/datastore/", params={"image": image_id}, files={"file": (image_id + suffix, handle)}
            )
        response.raise_for_status()

    def put_label(self, image_id: str, path: Path) -> None:
        suffix = "".join(path.suffixes) if path.name.endswith(".nii.gz") else path.suffix
        with open(path, "rb") as handle:
            response = requests.put(
                f"{self.url}/datastore/label",
                params={"image": image_id, "tag": "final"},
                files={"label": (image_id + suffix, handle)},
            )
        response.raise_for_status()

    def infer_response(self, model: str, image_id: str, params: dict | None = None) -> requests.Response:
        start = time.perf_counter()
        response = requests.post(
            f"{self.url}/infer/{model}",
            params={"image": image_id, "output": "image"},
            data={"params": json.dumps(params or {})},
            timeout=900,
        )
        if response.ok:
            self.timings.setdefault(model, []).append(time.perf_counter() - start)
        return response

    def infer(self, model: str, image_id: str, params: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The mask MONAI Label writes, as a client reads it: ``(H, W)`` from a PNG, or ``(X, Y, Z)`` + affine
        from a NIfTI file."""
        response = self.infer_response(model, image_id, params)
        if not response.ok:
            raise AssertionError(f"/infer/{model} on {image_id}: {response.status_code}\n{self.log()[-4000:]}")
        if response.content[:4] == b"\x89PNG":
            return np.asarray(Image.open(io.BytesIO(response.content))), None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "result.nii.gz"
            path.write_bytes(response.content)
            image = nib.load(str(path))
            return np.asarray(image.dataobj), image.affine

    def train(self, model: str, **request) -> requests.Response:
        return requests.post(f"{self.url}/train/{model}", params={"run_sync": "true"}, json=request, timeout=1800)
