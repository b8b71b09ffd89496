"""The course as a website (`make site`, mkdocs.yml, docs/hooks.py).

Builds the real site once from the committed notebooks (never executed) and checks that every
chapter has its page with all of its figures, that the README's links to notebooks land on the
chapter pages, that progress bars show where they ended, and that no relative link or image on any
page is broken. A second, tiny site built from a made-up repository checks what the real one does
not exercise today: an image the README shows, links between chapters written in a notebook.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def build(repo: Path, out: Path) -> float:
    """`mkdocs build --strict` of `repo` into `out`, offline; returns the seconds it took."""
    for module in ("mkdocs", "material", "mkdocs_jupyter"):
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"{module} is missing: install the site tools, pip install -e '.[site]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               # any attempt to reach the network fails fast: the build must not need it
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "-f", str(repo / "mkdocs.yml"), "-d", str(out)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, f"mkdocs build failed:\n{proc.stdout}\n{proc.stderr}"
    return seconds


# ---------------------------------------------------------------------------------------------
# Reading the built pages
# ---------------------------------------------------------------------------------------------

class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()
        self.images: list[str] = []  # data: URIs of <img> tags

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            if name in ("href", "src"):
                self.refs.append((tag, name, value))
                if tag == "img" and name == "src" and value.startswith("data:image/"):
                    self.images.append(value)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def page_of(site: Path, notebook: Path) -> Path:
    return site / "notebooks" / notebook.stem / "index.html"


def broken_links(site: Path) -> list[str]:
    """Every relative href / src on every page whose target (file, or id in a page) is missing."""
    pages = {p: parse(p) for p in site.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        where = path.relative_to(site).as_posix()
        for tag, attr, url in page.refs:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith("#"):
                continue
            if url.startswith("/") and where != "404.html":
                # 404.html is served at any depth, so MkDocs writes its links from the site root
                broken.append(f"{where}: <{tag} {attr}='{url}'> is absolute (breaks under a path)")
                continue
            if url == "" and attr == "src":
                broken.append(f"{where}: <{tag} src=''> is empty")
                continue
            base = site if url.startswith("/") else path.parent
            target = (base / unquote(parts.path).lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file() or site.resolve() not in target.parents:
                broken.append(f"{where}: <{tag} {attr}='{url}'> -> missing {target}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[next(p for p in pages if p.resolve() == target)].ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{where}: <{tag} {attr}='{url}'> -> no id '{parts.fragment}'")
    return broken


# ---------------------------------------------------------------------------------------------
# What a notebook should show
# ---------------------------------------------------------------------------------------------

def _widget_state(nb: dict) -> dict:
    return nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _outputs(nb: dict):
    """Every output a reader sees in JupyterLab, outputs inside saved Output widgets included."""
    state = _widget_state(nb)
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            yield out
    for model in state.values():
        if model.get("model_name") == "OutputModel":
            yield from model["state"].get("outputs", [])


def figures(nb: dict) -> list[str]:
    """The base64 payloads of the notebook's image outputs, whitespace removed."""
    found = []
    for out in _outputs(nb):
        for mime in IMAGE_MIMES:
            data = out.get("data", {}).get(mime)
            if data:
                found.append(re.sub(r"\s+", "", "".join(data)))
    return found


def progress_bars(nb: dict) -> list[str]:
    """The right-hand text of each saved tqdm bar, as it ended: '150/150 [00:19<00:00, ...]'."""
    state = _widget_state(nb)
    texts = []
    for out in _outputs(nb):
        view = out.get("data", {}).get(WIDGET_VIEW)
        model = state.get(view["model_id"]) if view else None
        if not model or model["model_name"] != "HBoxModel":
            continue
        kids = [state.get(c.removeprefix("IPY_MODEL_")) for c in model["state"]["children"]]
        if len(kids) == 3 and kids[1] and "Progress" in kids[1]["model_name"]:
            text = html.unescape(kids[2]["state"]["value"]).replace("\u2007", " ")
            texts.append(text)
    return texts


def page_text(path: Path) -> str:
    return html.unescape(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# The course's site
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    seconds = build(ROOT, out)
    print(f"\nmkdocs build of the course: {seconds:.1f} s")
    return out


def test_every_chapter_has_a_page_with_all_its_figures(site):
    assert CHAPTERS, "no chapter notebooks found"
    for notebook in CHAPTERS:
        page_path = page_of(site, notebook)
        assert page_path.is_file(), f"{notebook.name} has no page"
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        expected = figures(nb)
        page = parse(page_path)
        shown = {re.sub(r"\s+", "", unquote(src.split(",", 1)[1])) for src in page.images}
        missing = [i for i, payload in enumerate(expected) if payload not in shown]
        assert not missing, f"{notebook.name}: figures {missing} of {len(expected)} not on its page"
        assert len(page.images) >= len(expected)
        # the committed outputs are there as text too, and the page was not executed: no errors
        assert "jp-OutputArea-output" in page_path.read_text(encoding="utf-8")


def test_landing_page_is_the_readme_and_links_every_chapter(site):
    index = site / "index.html"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    title = readme.splitlines()[0].lstrip("# ").strip()
    page = parse(index)
    assert title in page_text(index)
    hrefs = {url for tag, attr, url in page.refs if tag == "a"}
    # README links written for GitHub (notebooks/05_unified_mllm.ipynb) land on chapter pages
    for linked in re.findall(r"\]\((notebooks/[^)]+\.ipynb)\)", readme):
        assert linked.removesuffix(".ipynb") + "/" in hrefs, f"README link {linked} not rewritten"
    assert not [h for h in hrefs if h.endswith((".ipynb", ".md"))]
    # the navigation, on every page, lists every chapter
    for notebook in CHAPTERS:
        assert f"notebooks/{notebook.stem}/" in hrefs, f"navigation lacks {notebook.name}"
    assert (site / "CONTRIBUTING" / "index.html").is_file()


def test_progress_bars_read_as_they_ended(site):
    for notebook in CHAPTERS:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        text = page_text(page_of(site, notebook))
        # widgets need JavaScript from a CDN: none is left, their saved state is shown as text
        assert WIDGET_VIEW not in text and "unpkg.com" not in text, notebook.name
        for bar in progress_bars(nb):
            assert bar in text, f"{notebook.name}: the progress bar '{bar}' is not on its page"


def test_no_broken_internal_link(site):
    broken = broken_links(site)
    assert not broken, "\n".join(broken[:20])


# ---------------------------------------------------------------------------------------------
# A made-up repository: images shown by the README, links written inside notebooks
# ---------------------------------------------------------------------------------------------

# 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _notebook(cells: list[dict], widgets: dict | None = None) -> str:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}
    if widgets:
        meta["widgets"] = {WIDGET_STATE: {"state": widgets, "version_major": 2,
                                          "version_minor": 0}}
    return json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5})


def _md(i: int, text: str) -> dict:
    return {"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": text}


def _model(name: str, **state) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0", "state": state}


def test_a_small_repository_builds_with_its_images_and_chapter_links(tmp_path):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "mkdocs.yml", repo / "mkdocs.yml")
    shutil.copy(ROOT / "docs" / "hooks.py", repo / "docs" / "hooks.py")
    (repo / "data" / "examples").mkdir(parents=True)
    (repo / "data" / "examples" / "scene.png").write_bytes(PNG)
    (repo / "data" / "README.md").write_text("# Data\n\nSee [the course](../README.md).\n")
    (repo / "CONTRIBUTING.md").write_text("# Contributing\n\nRead [chapter 01]"
                                          "(notebooks/01_second.ipynb#a-section).\n")
    (repo / "README.md").write_text(
        "# A course\n\n![a scene](data/examples/scene.png)\n\n"
        "| # | notebook |\n|---|---|\n| 00 | [first](notebooks/00_first.ipynb) |\n"
        "| 01 | [second](notebooks/01_second.ipynb) |\n\n"
        "[contributing](CONTRIBUTING.md), [data](data/README.md), [a script](scripts/x.py)\n")
    (repo / "scripts").mkdir()
    (repo / "scripts" / "x.py").write_text("print('x')\n")
    widgets = {
        "bar": _model("HBoxModel", children=["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]),
        "l": _model("HTMLModel", value="train:\u200740%"),
        "p": _model("FloatProgressModel", value=4.0, min=0.0, max=10.0, bar_style=""),
        "r": _model("HTMLModel", value="\u20074/10\u2007[00:01&lt;00:02,\u2007\u20073.00it/s]"),
    }
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "00_first.ipynb").write_text(_notebook([
        _md(0, "# Chapter 00: First\n\nNext: [chapter 01](01_second.ipynb#a-section); "
               "the scene: ![scene](../data/examples/scene.png); "
               "[the datasheet](../data/README.md)."),
        {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1,
         "source": "plot()", "outputs": [
             {"output_type": "display_data", "metadata": {},
              "data": {"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure>"}},
             {"output_type": "display_data", "metadata": {},
              "data": {WIDGET_VIEW: {"model_id": "bar", "version_major": 2, "version_minor": 0},
                       "text/plain": "train:   0%|          | 0/10 [00:00<?, ?it/s]"}}]},
    ], widgets))
    (repo / "notebooks" / "01_second.ipynb").write_text(_notebook([
        _md(0, "# 01 · Second\n\n## A section\n\nBack to [chapter 00](00_first.ipynb).")]))

    site = tmp_path / "site"
    build(repo, site)
    assert (site / "data" / "examples" / "scene.png").read_bytes() == PNG
    assert (site / "scripts" / "x.py").is_file()
    index = parse(site / "index.html")
    assert ("img", "src", "data/examples/scene.png") in index.refs
    first = site / "notebooks" / "00_first" / "index.html"
    refs = parse(first).refs
    assert ("a", "href", "../01_second/#a-section") in refs
    assert ("img", "src", "../../data/examples/scene.png") in refs
    assert ("a", "href", "../../data/") in refs
    text = page_text(first)
    assert "train: 40%|████      | 4/10 [00:01<00:02,  3.00it/s]" in text
    assert "0/10" not in text
    assert [p.name for p in sorted(site.glob("notebooks/*"))] == ["00_first", "01_second"]
    assert not broken_links(site), broken_links(site)
    # the navigation titles every chapter alike, whatever its first heading says
    assert "00 · First" in page_text(site / "index.html")
    assert "01 · Second" in page_text(site / "index.html")
