"""The DDT instructor console: a French single-page web app served by the API under ``/console``.

The page and its assets (hand-written HTML, CSS and vanilla JavaScript in ``static/``) are served
by the app itself; nothing is loaded from elsewhere (the Content-Security-Policy forbids it). The
console calls the ``/api/v1`` instructor endpoints with the token the instructor typed in, kept
in ``sessionStorage`` only.
"""

from __future__ import annotations

from s3tr.console.web import ASSETS, router

__all__ = ["ASSETS", "router"]
