"""Message texts: Jinja templates kept as files in ``templates/`` (``<kind>.<locale>.j2``).

Each template has a ``subject`` block and a ``body`` block, rendered separately; plain text,
French by default, English available. Links point into the app (``S3TR_NOTIFY_APP_URL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, TemplateNotFound

from s3tr.decide.flags import CONTROLS, Control
from s3tr.errors import ConfigError

__all__ = ["LOCALES", "TEMPLATES_DIR", "Rendered", "link_for", "render"]

TEMPLATES_DIR = Path(__file__).with_name("templates")
LOCALES = ("fr", "en")
_FLAGS_FR = {"green": "vert", "orange": "orange", "red": "rouge"}


@dataclass(frozen=True)
class Rendered:
    """A rendered message: one-line subject, plain-text body."""

    subject: str
    body: str


def _date(value: Any, locale: str) -> str:
    if value in (None, ""):
        return ""
    day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    return day.strftime("%d/%m/%Y") if locale == "fr" else day.isoformat()


@lru_cache(maxsize=4)
def _env(locale: str) -> Environment:
    # plain-text messages: HTML autoescaping would garble them
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=False)
    env.filters["d"] = lambda v: _date(v, locale)
    env.filters["flag_fr"] = lambda v: _FLAGS_FR.get(str(v), str(v or "—"))
    return env


def link_for(kind: str, context: dict[str, Any], app_url: str) -> str:
    """The app page a message points to (the photo request, the parcel, or the review queue)."""
    base = app_url.rstrip("/")
    if kind == "digest":
        return f"{base}/console/cases?department={context.get('department', '')}"
    if context.get("request_id") and kind in ("photo_requested", "reminder", "photo_checked"):
        return f"{base}/photo-requests/{context['request_id']}"
    return f"{base}/parcels/{context.get('id_parcel', '')}"


def render(kind: str, locale: str, context: dict[str, Any], *, app_url: str) -> Rendered:
    """Render the subject and body of a ``kind`` message in ``locale`` (``fr`` or ``en``).

    Parameters
    ----------
    context
        The notification's payload plus its parcel columns (``id_parcel``, ``campaign``,
        ``request_id``...). ``control`` is turned into its plain-language label.

    Raises
    ------
    ConfigError
        No template for that kind (or language).
    """
    lang = locale if locale in LOCALES else "fr"
    env = _env(lang)
    try:
        template = env.get_template(f"{kind}.{lang}.j2")
    except TemplateNotFound as exc:
        raise ConfigError(f"no message template {kind}.{lang}.j2 in {TEMPLATES_DIR}") from exc
    ctx = dict(context)
    control = ctx.get("control")
    if control in set(Control):
        ctx["control_label"] = CONTROLS[Control(control)][0 if lang == "fr" else 1]
    else:
        ctx.setdefault("control_label", control or "")
    ctx["link"] = link_for(kind, ctx, app_url)
    subject = "".join(template.blocks["subject"](template.new_context(ctx)))
    body = "".join(template.blocks["body"](template.new_context(ctx)))
    return Rendered(" ".join(subject.split()), body.strip() + "\n")
