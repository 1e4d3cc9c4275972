"""Jinja2 templates for daemon configurations (templates/ at the top of the repository).

Found in the source tree first (a checkout, an editable install, the lab), then where
the Debian package installs them. StrictUndefined: a missing variable is an error at
render time, never a silently empty directive.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

SEARCH_PATH = (
    Path(__file__).resolve().parents[2] / "templates",
    Path("/usr/share/vragent/templates"),
)


def template_dir() -> Path:
    for directory in SEARCH_PATH:
        if directory.is_dir():
            return directory
    raise FileNotFoundError(f"no template directory among {', '.join(map(str, SEARCH_PATH))}")


@functools.lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # configuration files, not HTML
    )


def render(name: str, **context: object) -> str:
    return environment().get_template(name).render(**context)
