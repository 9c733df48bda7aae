"""Web service for detection: FastAPI app (`create_app`) and the single-page UI in `static/`.

Start it with `macbdf serve --checkpoint DIR`; see `macbdf.serve.app` for the endpoints.
"""
from __future__ import annotations

from macbdf.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
