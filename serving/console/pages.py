"""The console's pages: one Jinja environment over serving/console/templates, autoescaping everything.

User-written text (descriptions, notes, ids) only ever reaches a page through a template variable, so it is
escaped; no template marks anything `|safe`. The static files are a fixed list, served as they are.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from features.build import FEATURES

HERE = Path(__file__).resolve().parent
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
BAR_WIDTH = 160  # pixels of the longest reason bar on a case page


def plain_name(feature: str) -> str:
    """A feature's meaning in plain words, from the generated feature list; the raw name if it has none."""
    return FEATURES["report"].get(feature) or FEATURES["order"].get(feature) or feature


def time_left(seconds: float | None) -> str:
    """'3 h 05 min left' or 'late by 2 h 10 min'."""
    if seconds is None:
        return ""
    late, s = seconds < 0, int(abs(seconds))
    days, rest = divmod(s, 86400)
    text = (f"{days} d " if days else "") + f"{rest // 3600} h {rest % 3600 // 60:02d} min"
    return f"late by {text}" if late else f"{text} left"


def plain_value(value) -> str:
    """A feature's value as a person reads it: 29.997916666666665 as 30, 0.3333 as 0.333, 1403.3 as 1,403."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def when(value: str | datetime | None) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM UTC'."""
    if not value:
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.strftime("%Y-%m-%d %H:%M UTC")


def bars(reasons: list[dict]) -> list[dict]:
    """The models' reasons, each with its bar's width in pixels (proportional to |priority_effect|) and direction.

    A rules-only score's reasons name the rule instead (see rule_reasons) and get no bar."""
    scored = [r for r in reasons if isinstance(r.get("priority_effect"), (int, float))]
    biggest = max((abs(r["priority_effect"]) for r in scored), default=0.0) or 1.0
    return [{**r, "name": plain_name(str(r.get("feature", ""))),
             "width": max(1, round(BAR_WIDTH * abs(r["priority_effect"]) / biggest)),
             "direction": "up" if r["priority_effect"] >= 0 else "down"} for r in scored]


def rule_reasons(reasons: list[dict]) -> list[dict]:
    """The reasons of a rules-only score (no models): the rule and what it looked at."""
    return [r for r in reasons if "rule" in r]


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(time_left=time_left, when=when, plain_value=plain_value, plain_name=plain_name, bars=bars,
                       rule_reasons=rule_reasons)
    env.globals.update(bar_width=BAR_WIDTH)
    return env


ENV = _environment()


def render(template: str, **context) -> str:
    return ENV.get_template(template).render(**context)


def static_file(name: str) -> tuple[Path, str] | None:
    """(path, media type) of a console static file, or None for any name not on the list."""
    media = STATIC.get(name)
    return (HERE / "static" / name, media) if media else None



def utc_input(value: str | None) -> str | None:
    """A datetime-local input's value ('2026-12-03T18:00', no zone) read as UTC; anything else as it came."""
    try:
        at = datetime.fromisoformat(value) if value else None
    except ValueError:
        return value
    return at.replace(tzinfo=UTC).isoformat() if at is not None and at.tzinfo is None else value
