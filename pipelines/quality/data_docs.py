"""Great Expectations' Data Docs, made to open offline like the dashboards.

GX renders its site with stylesheets and scripts from public CDNs (Bootstrap, jQuery,
bootstrap-table, Font Awesome, Vega), a newsletter form and logos on S3: opened from disk
on a machine without network, the index's tables stay empty (bootstrap-table fills them)
and the status icons are missing; a banner offers online tutorials, and the index's table is
wider than a 1024 px screen. The few files the pages need are vendored in
`data_docs_assets/` (its README lists versions and licences): they are copied into the
site and the pages point at them; every other reference off the machine is removed.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ASSETS = Path(__file__).with_name("data_docs_assets")
VENDOR = Path("static") / "vendor"  # where the site holds its copy
# The last part of a CDN address in GX's templates -> the vendored file that replaces it.
VENDORED = {
    "jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "bootstrap.min.js": "bootstrap/bootstrap.bundle.min.js",  # with Popper, which GX loads apart
    "bootstrap-table.min.css": "bootstrap-table/bootstrap-table.min.css",
    "bootstrap-table.min.js": "bootstrap-table/bootstrap-table.min.js",
    "bootstrap-table-filter-control.css": "bootstrap-table/bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.min.css": "bootstrap-table/bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.min.js": "bootstrap-table/bootstrap-table-filter-control.min.js",
    "all.min.css": "fontawesome/css/all.min.css",
    "bootstrap-datepicker.min.js": "bootstrap-datepicker/bootstrap-datepicker.min.js",  # filter-control calls it
    "bootstrap-datepicker.min.css": "bootstrap-datepicker/bootstrap-datepicker.min.css",
}

REMOTE = r"""(?:https?:)?//[^"'\s)>]+"""
OFFLINE_CSS = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
.alert-danger, .text-danger { color: #b2182b; } .text-success { color: #1b7837; }
nav ul, .list-group { list-style: none; padding-left: 0; }
/* The index's validation table fits at 1024 px: narrower page margins, columns sharing the width
   (long suite and asset names wrap) instead of a table cut off at the right. */
.container-fluid.pl-5 { padding-left: 1rem !important; padding-right: 1rem !important; }
table.ge-index-page-validation-results-table, table.ge-index-page-expectation_suites-table {
  table-layout: fixed; width: 100% !important; font-size: 0.875rem; }
.bootstrap-table td, .bootstrap-table th .th-inner { overflow-wrap: break-word; white-space: normal !important; }
.bootstrap-table td .cooltip { max-width: 100%; overflow-wrap: anywhere; }
.bootstrap-table .filter-control input, .bootstrap-table .filter-control select { min-width: 0; width: 100%; }
"""
_PATTERNS = [
    re.compile(rf"<script[^>]*\ssrc=[\"']{REMOTE}[\"'][^>]*>\s*</script>", re.I),
    re.compile(rf"<link[^>]*\shref=[\"']{REMOTE}[\"'][^>]*/?>", re.I),
    re.compile(rf"<img[^>]*\ssrc=[\"']{REMOTE}[\"'][^>]*/?>", re.I),
    re.compile(rf"<form[^>]*\saction=[\"']{REMOTE}[\"'].*?</form>", re.I | re.S),
    re.compile(r"<footer>\s*<p>Stay current on everything GX.*?</footer>", re.I | re.S),  # a newsletter link
    # The "check out one of these tutorials" banner (online tutorials) and the script that shows it.
    re.compile(r"<footer[^>]*\sid=[\"']ge-cta-footer[\"'].*?</footer>"
               r"(?:\s*<script>(?:(?!</script>).)*ge-cta-footer(?:(?!</script>).)*</script>)?", re.I | re.S),
]
_REMOTE_LINK = re.compile(rf"<a([^>]*)\shref=[\"']{REMOTE}[\"']([^>]*)>", re.I)
_REMOTE_URL = re.compile(rf"url\(\s*[\"']?{REMOTE}[\"']?\s*\)", re.I)


_TAG = re.compile(rf"<(script|link)\b[^>]*\s(?:src|href)=[\"']({REMOTE})[\"'][^>]*>(\s*</script>)?", re.I)


# A page's reference to the site's own static/ folder: GX writes some one level short on
# the validation pages (their favicon), so each is written again from the site's root.
_STATIC = re.compile(r"""(\s(?:href|src)=["'])(?:\./|\.\./)*static/([^"'?#]+)""", re.I)


def _static_ref(match: re.Match, page: Path, site: Path) -> str:
    return match.group(1) + Path(os.path.relpath(site / "static" / match.group(2), page.parent)).as_posix()


def _vendored_tag(match: re.Match, page: Path, site: Path) -> str:
    """A CDN tag GX's pages need, pointing at the site's vendored copy; other tags unchanged."""
    kind, url = match.group(1).lower(), match.group(2)
    local = VENDORED.get(url.rsplit("/", 1)[-1].split("?", 1)[0])
    if local is None:
        return match.group(0)
    href = Path(os.path.relpath(site / VENDOR / local, page.parent)).as_posix()
    return (f'<script src="{href}"></script>' if kind == "script"
            else f'<link rel="stylesheet" type="text/css" href="{href}"/>')


def make_offline(site: Path) -> list[Path]:
    """Copy the vendored assets into the site, point the pages' CDN references at them, and
    strip every other reference off the machine from the site's pages and stylesheets."""
    site = Path(site)
    shutil.copytree(ASSETS, site / VENDOR, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    changed = []
    for path in sorted(site.rglob("*")):
        if path.suffix.lower() not in (".html", ".css", ".js") or not path.is_file() or VENDOR.parts[1] in \
                path.relative_to(site).parts[:2]:
            continue
        text = original = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() == ".html":
            text = _TAG.sub(lambda m, page=path: _vendored_tag(m, page, site), text)
            text = _STATIC.sub(lambda m, page=path: _static_ref(m, page, site), text)
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
