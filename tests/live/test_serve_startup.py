"""``callwise serve`` loads its transport before it reports itself healthy: LiteLLM's import (seconds)
used to land on the first request, after ``/health`` already said ok."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_transport_is_loaded_before_the_server_accepts_requests(tmp_path) -> None:
    # a fresh interpreter: other tests of this process have imported LiteLLM already
    script = textwrap.dedent("""
        import sys
        from starlette.testclient import TestClient
        from callwise.core.fixed import SingleModel
        from callwise.live.backend import Live, endpoints_for_base
        from callwise.live.prices import LivePrices
        from callwise.live.server import PolicyServer

        live = Live(endpoints_for_base(["m"], "http://127.0.0.1:9/v1"), prices=LivePrices(provider_only=True))
        srv = PolicyServer({"one": SingleModel("m")}, live)
        app = srv.app()
        print("before", "litellm" in sys.modules)
        with TestClient(app) as c:  # runs the lifespan's startup, as uvicorn does before it listens
            print("healthy", c.get("/health").json()["status"], "litellm" in sys.modules, live._loop is not None)
        live.close()
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "before False" in r.stdout and "healthy ok True True" in r.stdout, r.stdout
