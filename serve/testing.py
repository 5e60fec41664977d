"""Helpers for tests and load benchmarks: a real uvicorn server on 127.0.0.1 in a background thread, and
tiny random-weight checkpoints to serve.

    with ServerThread(create_app(...)) as server:
        httpx.get(server.url + "/healthz")
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

TINY_SG2 = dict(resolution=16, channel_base=256, channel_max=32, z_dim=32, w_dim=32, mapping_layers=2)


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) in a daemon thread, lifespan included."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.app = app

    def start(self, timeout: float = 30.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def tiny_checkpoint(directory: str | Path, ch_mul: str = "1", seed: int = 0, name: str = "stylegan2-emoji",
                    metadata: dict[str, Any] | None = None, config: str = "stylegan2-emoji", **arch) -> Path:
    """A random-init StyleGAN2 checkpoint of a tiny architecture (a 16-px generator of ~10k parameters)."""
    import torch

    from zoo.checkpoint import save_checkpoint
    from zoo.models import build_generator, get_config

    cfg = get_config(config, ch_mul, **{**TINY_SG2, **arch})
    torch.manual_seed(seed)
    G = build_generator(cfg).eval()
    return save_checkpoint(directory, config=cfg, G_ema=G, name=name, metadata=metadata or {})
