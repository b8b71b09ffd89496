"""MkDocs hooks that turn the repository into the course's website (`make site`).

The site's pages are the repository's own files, not copies kept in docs/:
- README.md is the landing page (index.md), CONTRIBUTING.md and data/README.md pages of their own;
- every notebooks/NN_topic.ipynb is a chapter page, rendered by mkdocs-jupyter with the outputs
  committed in it (never executed);
- any other repository file that one of these pages links to or shows (an image, a script) is
  published beside it, so the link works on the site as it does on GitHub.

Notebooks are staged (copied, with one change) under .cache/site/ before mkdocs-jupyter reads them:
an ipywidgets output, such as a tqdm progress bar, needs JavaScript from a CDN to render, and its
text fallback holds the bar as it was when the cell *started* ("0%| | 0/150"). The staged copy
replaces each widget with static text and pictures made from the widget state that Jupyter saved
with the notebook, i.e. the bar as it *ended* ("100%|##########| 150/150 [00:19<00:00, ...]").
The notebooks in notebooks/ are never modified.
"""

from __future__ import annotations

import ast
import copy
import html
import json
import logging
import posixpath
import re
from pathlib import Path
from urllib.parse import urlsplit

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.minimllm")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# Markdown files published as pages: repository path -> path in the site's sources.
PAGES = {"README.md": "index.md", "CONTRIBUTING.md": "CONTRIBUTING.md",
         "data/README.md": "data/README.md"}
STAGE = Path(".cache") / "site"  # relative to the repository root (mkdocs.yml's folder)

_state: dict = {}


def repo_root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def chapters(root: Path) -> list[Path]:
    """The chapter notebooks, in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


# ---------------------------------------------------------------------------------------------
# Widgets as static text
# ---------------------------------------------------------------------------------------------

_BAR_PARTIALS = " ▏▎▍▌▋▊▉"


def _html_text(value: str) -> str:
    """The text of a small HTML fragment (tqdm writes its labels as HTML)."""
    text = html.unescape(re.sub(r"<[^>]+>", "", value or ""))
    return text.replace("\u2007", " ").replace("\u200b", "").replace("\xa0", " ")


def _bar(value: float, lo: float, hi: float, width: int = 10) -> str:
    """tqdm's text bar for a progress widget: 100% -> '██████████'."""
    frac = 0.0 if hi <= lo else min(max((value - lo) / (hi - lo), 0.0), 1.0)
    full, rest = divmod(frac * width, 1)
    bar = "█" * int(full)
    if int(full) < width:
        bar += _BAR_PARTIALS[int(rest * len(_BAR_PARTIALS))]
    return bar.ljust(width)


def _model(state: dict, ref: str) -> dict | None:
    return state.get(ref.removeprefix("IPY_MODEL_"))


def _is_progress(model: dict | None) -> bool:
    return model is not None and model["model_name"] in ("FloatProgressModel", "IntProgressModel")


def _control_text(model: dict) -> str:
    """One control as text: '[ask]', 'question: [how many objects are there?]'."""
    name, s = model["model_name"], model["state"]
    desc = _html_text(s.get("description", ""))
    if name == "ButtonModel":
        return f"[{desc}]"
    if name in ("HTMLModel", "LabelModel", "HTMLMathModel"):
        return _html_text(s.get("value", ""))
    if _is_progress(model):
        bar = _bar(s.get("value", 0), s.get("min", 0), s.get("max", 100))
        return f"{desc} |{bar}|".strip()
    if "value" in s:
        value = s["value"]
        if "options" in s and isinstance(value, int) and not isinstance(value, bool):
            options = s.get("_options_labels") or s["options"]
            value = options[value] if 0 <= value < len(options) else value
        return f"{desc}: [{value}]" if desc else f"[{value}]"
    return f"[{name.removesuffix('Model')}]"


def _text_output(text: str) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/plain": text}}


def _widget_outputs(model: dict | None, state: dict) -> list[dict]:
    """A saved widget as static notebook outputs (text for controls, Output widgets' outputs)."""
    if model is None:
        return []
    name, s = model["model_name"], model["state"]
    children = [_model(state, ref) for ref in s.get("children", [])]
    if name == "OutputModel":
        return copy.deepcopy(s.get("outputs", []))
    if name == "HBoxModel" and len(children) == 3 and _is_progress(children[1]):
        # tqdm.notebook's bar: HTML (description, percentage), progress, HTML (counts, rate).
        left, bar, right = children
        line = (_html_text(left["state"].get("value", "")) + "|"
                + _bar(bar["state"].get("value", 0), bar["state"].get("min", 0),
                       bar["state"].get("max", 100))
                + "|" + _html_text(right["state"].get("value", "")))
        return [_text_output(line)]
    if children:
        outputs: list[dict] = []
        row: list[str] = []
        for child in children:
            if child is None:
                continue
            if child["state"].get("children") or child["model_name"] == "OutputModel":
                if row:
                    outputs.append(_text_output("  ".join(row)))
                    row = []
                outputs.extend(_widget_outputs(child, state))
            else:
                row.append(_control_text(child))
        if row:
            outputs.append(_text_output("  ".join(row)))
        return outputs
    return [_text_output(_control_text(model))]


def static_widgets(nb: dict) -> tuple[dict, int]:
    """A copy of a notebook whose widget outputs are static text and pictures.

    Returns the copy and the number of widget outputs replaced."""
    nb = copy.deepcopy(nb)
    state = nb.get("metadata", {}).pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.get("cells", []):
        new_outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                new_outputs.append(out)
                continue
            replaced += 1
            model = state.get(view.get("model_id", ""))
            shown = _widget_outputs(model, state)
            if not shown:
                fallback = "".join(out["data"].get("text/plain", ""))
                shown = [_text_output(
                    "(an interactive widget; its state was not saved with the notebook: "
                    "run the notebook to see it)"
                    if model is None else fallback)]
            if model is not None and model["model_name"] != "HBoxModel":
                shown.insert(0, _text_output(
                    "(an interactive widget, shown as it was when the notebook was saved: "
                    "run the notebook to use it)"))
            new_outputs.extend(shown)
        if "outputs" in cell:
            cell["outputs"] = new_outputs
    return nb, replaced


# ---------------------------------------------------------------------------------------------
# Links from pages to other repository files
# ---------------------------------------------------------------------------------------------

_MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_REF = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")


def is_relative(url: str) -> bool:
    parts = urlsplit(url)
    return not (parts.scheme or parts.netloc or url.startswith(("#", "/")))


def references(text: str) -> list[str]:
    """Relative link and image targets in Markdown / HTML text (fragments and queries dropped)."""
    found = []
    for url in _MD_LINK.findall(text) + _HTML_REF.findall(text):
        if is_relative(url):
            path = urlsplit(url).path
            if path:
                found.append(path)
    return found


def _notebook_markdown(nb: dict) -> str:
    return "\n".join("".join(c.get("source", "")) for c in nb.get("cells", [])
                     if c.get("cell_type") == "markdown")


# ---------------------------------------------------------------------------------------------
# MkDocs events
# ---------------------------------------------------------------------------------------------

def _nav_title(path: Path, nb: dict) -> str:
    """'05 · Method A: the unified-embedding MLLM (LLaVA-style)' from the notebook's first H1."""
    number = path.name[:2]
    for line in _notebook_markdown(nb).splitlines():
        if line.startswith("# "):
            title = re.sub(r"^(chapter\s+)?\d+\s*[:·.\-]\s*", "", line[2:].strip(), flags=re.I)
            return f"{number} · {title}"
    return f"{number} · " + path.stem[3:].replace("_", " ").capitalize()


def on_config(config):
    root = repo_root(config)
    stage = root / STAGE
    notebooks = []
    for path in chapters(root):
        nb = json.loads(path.read_text(encoding="utf-8"))
        staged, replaced = static_widgets(nb)
        target = stage / "notebooks" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(staged, ensure_ascii=False, indent=1)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")  # unchanged: keep mkdocs-jupyter's cache
        log.debug("staged %s (%d widget outputs as text)", path.name, replaced)
        notebooks.append((path, nb))
    for stale in (stage / "notebooks").glob("*.ipynb"):
        if not (root / "notebooks" / stale.name).exists():
            stale.unlink()
    _state.update(root=root, stage=stage, notebooks=notebooks)

    if not config.nav:
        chapter_nav = [{_nav_title(p, nb): f"notebooks/{p.name}"} for p, nb in notebooks]
        config.nav = [{"Home": "index.md"}, {"Chapters": chapter_nav},
                      {"Contributing": "CONTRIBUTING.md"}, {"Data": "data/README.md"}]
    plugin = config.plugins.get("mkdocs-jupyter")
    if plugin is not None and not Path(plugin.config["cache_dir"]).is_absolute():
        plugin.config["cache_dir"] = str(root / plugin.config["cache_dir"])
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps the notebooks as pages
def on_files(files: Files, config) -> Files:
    root, stage = _state["root"], _state["stage"]
    added: dict[str, Path] = {}

    def add(src_uri: str, abs_path: Path) -> None:
        if src_uri in added or files.get_file_from_path(src_uri) is not None:
            return
        added[src_uri] = abs_path
        if abs_path.as_posix().endswith("/" + src_uri):
            # A real source folder (not File.generated): mkdocs-jupyter's wrapper of a notebook
            # finds its path from src_dir, and loses a generated file's abs_src_path.
            src_dir = abs_path.as_posix()[: -len(src_uri) - 1]
            files.append(File(src_uri, src_dir, config.site_dir, config.use_directory_urls))
        else:
            files.append(File.generated(config, src_uri, abs_src_path=str(abs_path)))

    texts: list[tuple[str, str]] = []  # (repository path of a page, its text)
    for repo_path, site_path in PAGES.items():
        if (root / repo_path).is_file():
            add(site_path, root / repo_path)
            texts.append((repo_path, (root / repo_path).read_text(encoding="utf-8")))
    for path, nb in _state["notebooks"]:
        add(f"notebooks/{path.name}", stage / "notebooks" / path.name)
        texts.append((f"notebooks/{path.name}", _notebook_markdown(nb)))

    # Repository files the pages link to or show (images, scripts, ...), published at the same
    # relative place, so that links written for GitHub also work on the site.
    for repo_path, text in texts:
        for ref in references(text):
            target = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), ref))
            if target.startswith("..") or target in PAGES or target.startswith("."):
                continue
            if (root / target).is_file():
                add(target, root / target)
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Links between the published Markdown files, written for GitHub (README.md), point at
    their place on the site (index.md)."""
    repo_path = {v: k for k, v in PAGES.items()}.get(page.file.src_uri)
    if repo_path is None:
        return markdown

    def fix(match: re.Match) -> str:
        url = match.group(1)
        if not is_relative(url):
            return match.group(0)
        parts = urlsplit(url)
        target = posixpath.normpath(posixpath.join(posixpath.dirname(repo_path), parts.path))
        if target not in PAGES or PAGES[target] == target:
            return match.group(0)
        new = posixpath.relpath(PAGES[target], posixpath.dirname(page.file.src_uri) or ".")
        new += f"#{parts.fragment}" if parts.fragment else ""
        return match.group(0).replace(url, new, 1)

    return _MD_LINK.sub(fix, markdown)


_STYLE_LIST = re.compile(r"<style>\s*(\[(?:'|\").*?(?:'|\")\])\s*</style>", re.S)


def _fix_style(match: re.Match) -> str:
    """mkdocs-jupyter writes nbconvert's inlined CSS as a Python list repr: join it back."""
    try:
        parts = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return match.group(0)
    return "<style>\n" + "\n".join(parts) + "\n</style>"


_HTML_ATTR = re.compile(r"""(\b(?:src|href)=)(["'])([^"']+)\2""")


def on_page_content(html_text: str, page, config, files: Files) -> str:
    src = page.file.src_uri
    if not src.endswith(".ipynb"):
        return html_text
    html_text = _STYLE_LIST.sub(_fix_style, html_text)

    # Relative links written in a notebook's markdown (to another chapter, to an image in the
    # repository) are relative to notebooks/; make them relative to the chapter's page URL.
    def fix(match: re.Match) -> str:
        attr, quote, url = match.groups()
        if not is_relative(url) or url.startswith("data:"):
            return match.group(0)
        parts = urlsplit(html.unescape(url))
        target = posixpath.normpath(posixpath.join(posixpath.dirname(src), parts.path))
        target = PAGES.get(target, target)
        file = files.get_file_from_path(target)
        if file is None:
            log.warning("%s links to '%s', which is not part of the site", src, url)
            return match.group(0)
        new = file.url_relative_to(page.file) + (f"#{parts.fragment}" if parts.fragment else "")
        return f"{attr}{quote}{html.escape(new, quote=True)}{quote}"

    return _HTML_ATTR.sub(fix, html_text)
