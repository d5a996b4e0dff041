"""gunicorn settings for the HTTP API: ``gunicorn -c python:hematovision.interfaces.gunicorn_conf``.

Options on the command line win (``-w 4``, ``-b 0.0.0.0:8000``). Before any worker starts,
``on_starting`` applies the API's loopback rule to every address gunicorn will listen on,
so a shared server without tokens refuses to start, as ``serve`` does.

Each worker imports the app and loads its own model after the fork (no ``preload_app``):
OpenVINO starts its thread pool when it compiles the model, and threads do not survive a
fork. docs/security.md gives the memory each worker costs (scripts/gunicorn_rss.py).
"""

from __future__ import annotations

import os
import sys

from hematovision.interfaces.api_security import SecurityError, SecuritySettings, check_bind

wsgi_app = "hematovision.interfaces.api:create_app()"
bind = ["127.0.0.1:8000"]
workers = 2
preload_app = False
# A worker's first gradient explanation (Grad-CAM...) imports TensorFlow: tens of seconds
# on a busy machine, which gunicorn's default 30 s would count as a hung worker.
timeout = 120
# gunicorn 27 opens a control socket in $XDG_RUNTIME_DIR or ~/.gunicorn by default: not needed.
control_socket_disable = True
# Workers' heartbeat files: in memory where the system has it, not on disk.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def on_starting(server) -> None:
    try:
        settings = SecuritySettings.from_environment()
        for address in server.cfg.address:
            if isinstance(address, tuple):
                check_bind(address[0], settings)
            elif isinstance(address, int):  # fd://N: an inherited socket, address unknown
                check_bind(f"file descriptor {address}", settings)
            # A Unix socket (a path) is reachable from this machine only.
    except SecurityError as exc:
        sys.exit(f"error: {exc}")
