"""Great Expectations' Data Docs, made to open offline like the dashboards.

GX renders its site with stylesheets and scripts from public CDNs (Bootstrap, jQuery, Font
Awesome, Vega), a newsletter form and logos on S3: opened from disk on a machine without
network, each page would try to reach them. Every reference off the machine is removed;
the pages keep GX's own local stylesheet and a small one of ours, so the validation
results (tables of expectations, observed values, failures) read as GX renders them.
"""

from __future__ import annotations

import re
from pathlib import Path

REMOTE = r"""(?:https?:)?//[^"'\s)>]+"""
OFFLINE_CSS = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
.alert-danger, .text-danger { color: #b2182b; } .text-success { color: #1b7837; }
nav ul, .list-group { list-style: none; padding-left: 0; }
"""
_PATTERNS = [
    re.compile(rf"<script[^>]*\ssrc=[\"']{REMOTE}[\"'][^>]*>\s*</script>", re.I),
    re.compile(rf"<link[^>]*\shref=[\"']{REMOTE}[\"'][^>]*/?>", re.I),
    re.compile(rf"<img[^>]*\ssrc=[\"']{REMOTE}[\"'][^>]*/?>", re.I),
    re.compile(rf"<form[^>]*\saction=[\"']{REMOTE}[\"'].*?</form>", re.I | re.S),
    re.compile(r"<footer>\s*<p>Stay current on everything GX.*?</footer>", re.I | re.S),  # a newsletter link
]
_REMOTE_LINK = re.compile(rf"<a([^>]*)\shref=[\"']{REMOTE}[\"']([^>]*)>", re.I)
_REMOTE_URL = re.compile(rf"url\(\s*[\"']?{REMOTE}[\"']?\s*\)", re.I)


def make_offline(site: Path) -> list[Path]:
    """Strip every reference off the machine from the site's pages and stylesheets."""
    changed = []
    for path in sorted(Path(site).rglob("*")):
        if path.suffix.lower() not in (".html", ".css", ".js") or not path.is_file():
            continue
        text = original = path.read_text(encoding="utf-8", errors="replace")
        for pattern in _PATTERNS:
            text = pattern.sub("", text)
        text = _REMOTE_LINK.sub(r"<a\1\2>", text)
        text = _REMOTE_URL.sub("none", text)
        if path.suffix.lower() == ".html" and "</head>" in text:
            text = text.replace("</head>", f"<style>{OFFLINE_CSS}</style></head>", 1)
        if text != original:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def remote_references(site: Path) -> list[str]:
    """What in the site still points off the machine (for tests and the publish check)."""
    found = []
    for path in sorted(Path(site).rglob("*")):
        if path.suffix.lower() in (".html", ".css", ".js") and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.name}: {m}" for m in re.findall(rf"(?:src|href|action)=[\"']({REMOTE})", text, re.I)]
            found += [f"{path.name}: {m}" for m in re.findall(rf"url\(\s*[\"']?({REMOTE})", text, re.I)]
    return found
