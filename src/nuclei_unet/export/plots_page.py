"""The page ``dvc plots show`` writes, with Vega, Vega-Lite and vega-embed inside it (offline).

DVC's own page loads the three libraries from a CDN, so it stays blank without a network.
This template carries them, bundled by ``vl-convert-python``; ``.dvc/config`` points
``plots.html_template`` at it, and ``make venv`` (or ``nuclei-unet plots-template``) writes it.
"""

from __future__ import annotations

from pathlib import Path

import vl_convert

from nuclei_unet.io.files import atomic_path, require_suffix

# DVC fills {refresh_tag} and {plot_divs}; {scripts}, its CDN tags, is left out on purpose
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script>
BUNDLE
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page() -> str:
    """The template's text: DVC's page with the libraries inline instead of from a CDN."""
    bundle = vl_convert.javascript_bundle()  # sets window.vega, vegaLite and vegaEmbed
    if "</script" in bundle or "{plot_divs}" in bundle:  # would break the page or DVC's fill
        raise RuntimeError("the Vega bundle cannot be inlined as it is")
    return PAGE.replace("BUNDLE", bundle)


def write_page(path: str | Path) -> Path:
    """Write the template to ``path`` (an ``.html`` file), atomically; returns the path."""
    path = require_suffix(path, (".html", ".htm"), "the page template")
    with atomic_path(path) as tmp:
        tmp.write_text(page(), encoding="utf-8")
    return Path(path)
