"""The report as one self-contained HTML page, for MLflow's artifact viewer.

MLflow shows a markdown artifact as text, so the report's figures read as link text there; it shows
an HTML artifact rendered, but in a sandboxed frame that cannot load the run's other artifacts. So
the page carries its PNG figures inline (``data:`` URIs) and links the PDFs by name.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#1f272d}"
         "img{max-width:100%;height:auto;border:1px solid #d8dee4}table{border-collapse:collapse;font-size:13px}"
         "td,th{border:1px solid #d8dee4;padding:2px 6px;text-align:right}th{background:#f3f5f7}"
         "code{background:#f3f5f7;padding:0 3px}")


def render(markdown_path: Path) -> str:
    """The markdown report at ``markdown_path`` as HTML, each ``![..](NAME.png)`` beside it embedded."""
    from markdown_it import MarkdownIt

    folder = markdown_path.parent
    body = MarkdownIt("commonmark").enable("table").render(markdown_path.read_text())

    def inline(match: re.Match) -> str:
        name = html.unescape(match.group(1))
        picture = folder / name
        if "/" in name or picture.suffix.lower() != ".png" or not picture.is_file():
            return match.group(0)
        data = base64.b64encode(picture.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'
    body = re.sub(r'src="([^"]+)"', inline, body)
    title = html.escape(markdown_path.stem)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
            f"</head><body>{body}</body></html>")
