"""Chapter 07's chat widget, driven in a real browser (`make browser-test`).

JupyterLab runs chapter 07 in quick mode; headless Chromium (Debian's /usr/bin/chromium, driven
by Playwright) opens it, clicks Run > Run All Cells, waits for the chat widget of section 8
("Talk to it") and its first answer, types another question into "question", presses "ask" and
reads the new answer from the page. Both answers must be what `minimllm.chat.chat` gives in Python
for the same scene (test scene 0 of the quick dataset), question (plus the format prompt of the
saved model's metrics.json, as the widget adds it) and saved model. A screenshot of the widget
goes to runs/chat_widget.png (ignored by git: the quick model's answers are not worth showing).

With MINIMLLM_WIDGET_MODEL=shipped (`make widget-screenshot`) the page runs the widget's cell of
chapter 07 alone, after a cell that loads the shipped reference assistant
(data/checkpoints/assistant) and the same test scene: the same clicks and checks, and the
screenshot goes to docs/chat_widget.png, the widget as a reader of the course meets it.

The notebook on disk is never touched: the server's root is a fresh folder under runs/ (ignored
by git) that holds a copy of the chapter with its outputs cleared, and JupyterLab runs with its
own settings there (autosave off, every cell attached to the page, no news), workspaces and
runtime files. The chapter's run also writes its model there: MINIMLLM_HOME points at a `data/`
whose entries are links to the repository's (checkpoints, examples, the dataset cache, your own
artifacts) except `artifacts/assistant-quick`, so it neither overwrites nor races the one that
`make test` writes. The folder is removed when the test passes and kept when it fails (with the
server's log and a screenshot of the page).

Collected only with MINIMLLM_BROWSER=1 (tests/browser/conftest.py); `make browser-test` sets it
after installing what it needs. By hand:
`MINIMLLM_BROWSER=1 .venv/bin/python -m pytest -q -s tests/browser`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "notebooks" / "07_instruction_tuning.ipynb"
CHROMIUM = Path(os.environ.get("MINIMLLM_CHROMIUM", "/usr/bin/chromium"))
SHIPPED = os.environ.get("MINIMLLM_WIDGET_MODEL", "") == "shipped"  # the reference assistant
SCREENSHOT = ROOT / ("docs" if SHIPPED else "runs") / "chat_widget.png"
QUICK_SIZES = {"n_train": 64, "n_test": 16, "n_compositional": 16}  # chapter 07's cell 2, quick
RUN_TIMEOUT = float(os.environ.get("MINIMLLM_BROWSER_TIMEOUT", "1200"))  # s for Run All Cells
ANSWER_TIMEOUT = 300.0  # s for one answer after "ask"
INSTALL = ("`make browser-test` installs both: Debian's Chromium (`apt-get install -y chromium "
           "chromium-driver`) and playwright (`.venv/bin/pip install -e '.[browser]'`; never "
           "`playwright install`, whose browser download is not reachable here)")
LAB_SETTINGS = {  # JupyterLab user settings for this run only (JUPYTERLAB_SETTINGS_DIR)
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}

# One look at the page: the cells' prompts, the kernel's status, the chat widget, tracebacks.
PAGE_STATE = """() => {
  const panel = document.querySelector('.jp-NotebookPanel');
  if (!panel) return null;
  const prompts = [...panel.querySelectorAll('.jp-InputPrompt')].map(e => e.textContent.trim());
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const widget = [...panel.querySelectorAll('.widget-vbox button')]
    .some(b => b.textContent.trim() === 'ask');
  const errors = [...panel.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent).filter(t => t.includes('Traceback') || /Error\\b/.test(t));
  const dialog = document.querySelector('.jp-Dialog');
  return {running: prompts.filter(p => p.includes('*')).length,
          done: prompts.filter(p => /\\[\\d+\\]/.test(p)).length,
          status: indicator ? indicator.dataset.status : null, widget, errors,
          dialog: dialog ? dialog.textContent.trim() : null};
}"""


def wait_for(what: str, check, timeout: float, context=lambda: "", every: float = 1.0):
    """Poll `check()` until it returns something truthy; else fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{context()}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


@pytest.fixture
def workdir(request):
    """A fresh folder under runs/: kept when the test fails, removed when it passes."""
    (ROOT / "runs").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="browser-", dir=ROOT / "runs"))
    yield path
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        shutil.rmtree(path, ignore_errors=True)
    else:
        print(f"\nkept for a look: {path} (jupyter.log, failure.png)")


@pytest.fixture
def browser():
    """Headless Debian Chromium under Playwright; skipped, saying how to install, when missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: {INSTALL}")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason=f"playwright is not installed: {INSTALL}")
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


def isolated_home(work: Path) -> Path:
    """MINIMLLM_HOME for the run: every entry of data/ linked, except artifacts/assistant-quick."""
    data = work / "home" / "data"
    (data / "artifacts").mkdir(parents=True)
    for entry in (ROOT / "data").iterdir():
        if entry.name != "artifacts":
            (data / entry.name).symlink_to(entry)
    artifacts = ROOT / "data" / "artifacts"
    for entry in artifacts.iterdir() if artifacts.is_dir() else ():
        if entry.name != "assistant-quick":
            (data / "artifacts" / entry.name).symlink_to(entry)
    return work / "home"


# With MINIMLLM_WIDGET_MODEL=shipped, what the widget's cell needs from chapter 07's earlier cells
SHIPPED_SETUP = f"""import json, textwrap, time

import matplotlib.pyplot as plt
import numpy as np

from minimllm.chat import chat, image_turn, load_mllm
from minimllm.data import load_dataset, render_scene, sample_scene
from minimllm.utils import checkpoints_dir, get_device

device = get_device()
out_dir = checkpoints_dir() / "assistant"  # the shipped reference assistant
result = {{"out_dir": str(out_dir),
          "settings": json.loads((out_dir / "metrics.json").read_text())["settings"]}}
dataset = load_dataset(**{QUICK_SIZES!r})"""


def chapter_copy(work: Path) -> str:
    """Chapter 07 with its outputs and saved widget state cleared, in the server's root (or, with
    MINIMLLM_WIDGET_MODEL=shipped, its widget's cell after `SHIPPED_SETUP`); returns its path
    there. No stale widget from the committed outputs can then be mistaken for the new."""
    nb = json.loads(CHAPTER.read_text())
    widget = [c for c in nb["cells"] if 'description="ask"' in "".join(c["source"])]
    if not widget:
        pytest.fail(f"{CHAPTER.relative_to(ROOT)} has no chat widget (a Button "
                    'description="ask"): section 8 changed, and this test with it')
    if SHIPPED:
        setup = {"cell_type": "code", "metadata": {}, "source": SHIPPED_SETUP}
        nb["cells"] = [setup, widget[0]]
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    copy = work / "root" / "notebooks" / CHAPTER.name
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return f"notebooks/{CHAPTER.name}"


@pytest.fixture
def lab(workdir):
    """JupyterLab on a free port with a random token, MINIMLLM_QUICK=1, root a copy of chapter
    07; stopped (with its kernels) whatever happens."""
    home = isolated_home(workdir)
    notebook = chapter_copy(workdir)
    settings = workdir / "lab" / "settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "MINIMLLM_QUICK": "1", "MINIMLLM_HOME": str(home),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab" / "workspaces"),
           "JUPYTER_CONFIG_DIR": str(workdir / "lab" / "config"),
           "JUPYTER_RUNTIME_DIR": str(workdir / "lab" / "runtime"),
           "IPYTHONDIR": str(workdir / "lab" / "ipython")}
    env.pop("MPLBACKEND", None)  # the kernel draws inline, whatever the caller's backend
    log = workdir / "jupyter.log"
    jupyter = Path(sys.executable).parent / "jupyter"  # .venv/bin/jupyter
    cmd = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.allow_root=True",
           f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={workdir / 'root'}"]
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  cwd=workdir / "root", start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def api(path: str):
            """The server's REST API: the JSON at `path`, None while it does not answer."""
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {server.returncode}:\n{tail(log)}")
            request = urllib.request.Request(f"{url}{path}",
                                             headers={"Authorization": f"token {token}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return json.load(response)
            except OSError:
                return None

        def up():
            return api("/api/status") is not None

        start = time.monotonic()
        wait_for("JupyterLab to answer", up, 120, lambda: f"\n{tail(log)}", every=0.5)
        print(f"\nJupyterLab up in {time.monotonic() - start:.1f} s on port {port}")
        yield {"url": url, "token": token, "notebook": notebook, "home": home, "log": log,
               "api": api}
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:  # anything of its session still alive (a kernel that did not stop)
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait()


class Python:
    """The answers of `minimllm.chat.chat` for test scene 0 with the model that the notebook's
    run saved, the question given the format prompt of its metrics.json as the widget does."""

    def __init__(self, home: Path):
        import numpy as np

        from minimllm.chat import chat, image_turn, load_mllm
        from minimllm.data import load_dataset, make_questions
        from minimllm.evaluate import ANSWER_TOKENS
        from minimllm.utils import get_device

        model_dir = (ROOT / "data" / "checkpoints" / "assistant" if SHIPPED
                     else home / "data" / "artifacts" / "assistant-quick")
        self.format_prompt = json.loads((model_dir / "metrics.json").read_text())[
            "settings"]["format_prompt"]
        self.model, self.processor = load_mllm(model_dir, device=get_device())
        scene = load_dataset(**QUICK_SIZES)["test"][0]
        self.image = scene["image"].convert("RGB")
        self._chat, self._turn, self._tokens = chat, image_turn, ANSWER_TOKENS
        # questions of the training types about this scene, in training phrasings
        self.questions = make_questions({"objects": scene["objects"]}, np.random.default_rng(0),
                                        ("color", "shape", "size", "existence", "position"))

    def ask(self, question: str) -> str:
        asked = question + self.format_prompt
        return self._chat(self.model, self.processor, [self._turn(asked)], [self.image],
                          max_new_tokens=self._tokens)[0]


@pytest.mark.timeout(RUN_TIMEOUT + 900)
def test_chat_widget_answers_as_chat_does(browser, lab, workdir):
    started = time.monotonic()
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.set_default_timeout(120_000)
    console = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error"
            else None)

    def state():
        return page.evaluate(PAGE_STATE) or {}

    def context():
        try:
            s = state()
        except Exception as error:  # the page itself may be gone
            s = {"page": f"unreadable ({error})"}
        errors = "\n".join(s.get("errors", []))[-3000:]
        return (f"\npage: {s and {k: v for k, v in s.items() if k != 'errors'}}"
                f"\ntracebacks in the notebook:\n{errors or '(none)'}"
                f"\nbrowser console errors: {console[-10:]}"
                f"\njupyter log:\n{tail(lab['log'], 2000)}")

    try:
        page.goto(f"{lab['url']}/lab/tree/{lab['notebook']}?token={lab['token']}")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()

        def kernel_ready():
            # the page shows "idle" before it has a kernel: ask the server for the notebook's
            # kernel, idle and with the page's websocket connected to it
            sessions = lab["api"]("/api/sessions") or []
            kernels = [x["kernel"] for x in sessions if x.get("path") == lab["notebook"]]
            return (any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels)
                    and state().get("status") == "idle" and not state().get("dialog"))

        wait_for("the notebook's kernel (started, idle, connected to the page)", kernel_ready,
                 180, context)
        print(f"notebook open, kernel idle after {time.monotonic() - started:.1f} s")

        def run_all():  # Run > Run All Cells, from the menu bar as a reader would
            page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
            page.locator(".lm-Menu").get_by_text("Run All Cells", exact=True).click()

            def started_or_dialog():
                s = state()
                return s.get("dialog") or s.get("running", 0) + s.get("done", 0) > 0

            wait_for("Run All Cells to start", started_or_dialog, 120, context, 0.5)
            return state().get("dialog")

        run_start = time.monotonic()
        dialog = run_all()
        if dialog and dialog.startswith("Select Kernel"):  # the page had not got its kernel yet
            print("JupyterLab asked for a kernel: choosing Python 3 and running all again")
            page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True).click()
            wait_for("the notebook's kernel after choosing it", kernel_ready, 180, context)
            dialog = run_all()
        if dialog:
            pytest.fail(f"JupyterLab shows a dialog instead of running the cells: {dialog!r}"
                        + context())
        finished = {"idle": 0}

        def widget_or_stopped():
            s = state()
            if s.get("widget"):
                return True
            if s.get("dialog"):  # e.g. the kernel died or restarted
                pytest.fail(f"JupyterLab shows a dialog: {s['dialog']!r}" + context())
            ran = s.get("done", 0) > 0 or s.get("running", 0) > 0
            finished["idle"] = finished["idle"] + 1 if (
                ran and not s.get("running") and s.get("status") == "idle") else 0
            if finished["idle"] >= 5:  # nothing runs any more, and no widget
                pytest.fail("the chapter stopped before its chat widget appeared" + context())
            return False

        wait_for("the chat widget (Run All Cells)", widget_or_stopped, RUN_TIMEOUT, context, 2)
        box = page.locator(".widget-vbox").filter(
            has=page.get_by_role("button", name="ask", exact=True))
        assert box.count() == 1, f"{box.count()} chat widgets on the page"
        answer = box.locator(".widget-textarea textarea")  # the Textarea "answer": the reply
        reply_text = lambda: answer.input_value().strip()
        question = box.locator(".widget-text input")
        ask = box.get_by_role("button", name="ask", exact=True)

        def all_done():
            s = state()
            return (s.get("status") == "idle" and not s.get("running")
                    and reply_text())

        wait_for("the first answer and the end of the run", all_done, RUN_TIMEOUT, context)
        run_seconds = time.monotonic() - run_start
        first_question, first_answer = question.input_value(), reply_text()
        print(f"Run All Cells: {run_seconds:.0f} s until the widget's first answer")

        python = Python(lab["home"])
        expected_first = python.ask(first_question)
        # a question whose answer differs from the first, so that the new answer shows itself
        for q in python.questions:
            new_question, expected = q["question"], python.ask(q["question"])
            if expected != first_answer:
                break
        else:
            pytest.fail(f"every question about test scene 0 gets the first answer "
                        f"{first_answer!r} from chat(): no change to wait for")

        question.fill(new_question)
        question.press("Tab")  # the value goes to the kernel before the click
        asked = time.monotonic()
        ask.click()
        wait_for("the answer to change after 'ask'",
                 lambda: reply_text() != first_answer, ANSWER_TIMEOUT, context, 0.5)
        answer_seconds = time.monotonic() - asked
        reply = reply_text()
        wait_for("the kernel to finish the answer and its picture",
                 lambda: state().get("status") == "idle", ANSWER_TIMEOUT, context, 0.5)
        picture = box.locator(".widget-output img").last
        wait_for("the picture of the scene in the widget",
                 lambda: picture.count() and picture.evaluate("i => i.complete && i.naturalWidth"),
                 60, context, 0.5)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        box.screenshot(path=str(SCREENSHOT))
    except BaseException:
        try:
            page.screenshot(path=str(workdir / "failure.png"), full_page=True)
        except Exception as error:  # the page itself may be gone
            print(f"no screenshot of the failure: {error}")
        raise

    print(f"widget, first question: {first_question!r}\n  page:   {first_answer!r}\n"
          f"  chat(): {expected_first!r}")
    print(f"widget, asked: {new_question!r} (answered in {answer_seconds:.1f} s)\n"
          f"  page:   {reply!r}\n  chat(): {expected!r}")
    print(f"screenshot: {SCREENSHOT.relative_to(ROOT)}; test body "
          f"{time.monotonic() - started:.0f} s")
    assert first_answer == expected_first, (
        "the widget's first answer is not chat()'s (the same scene? QUICK_SIZES must be chapter "
        "07's quick dataset sizes, cell 2)")
    assert reply == expected, "the widget's answer to the typed question is not chat()'s"
