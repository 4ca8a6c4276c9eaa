"""Every lesson in a real JupyterLab, in headless Chromium. A lesson with widgets: run all cells, move the first
control of each widget, and check that the widget's output changes and that no cell shows an error. A lesson
without one: open it and check that every code cell shows its committed run and none a traceback (nbval runs
those lessons' cells in a kernel in the same test run; the browser adds what only a browser does, which for
them is drawing the page).

The server runs on a free localhost port, token disabled, on a temporary copy of lessons/; a screenshot of each
lesson (its first widget, once moved) goes to $MINILM_SCREENSHOTS (default: a pytest temporary folder). About
2 minutes on 2 cores, most of it lesson 01's training. Needs Chromium (Debian's `chromium` package, or
$MINILM_CHROMIUM) and the playwright package (in the test extra); skipped otherwise."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from minilm.course.paths import LESSONS
from tests.helpers import widget_lessons

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: pip install -e '.[test]'")
CHROMIUM = os.environ.get("MINILM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("the browser test needs Chromium: apt-get install chromium (or set MINILM_CHROMIUM)", allow_module_level=True)

WIDGET_LESSONS = [os.path.basename(p) for p in widget_lessons()]
OTHER_LESSONS = sorted(n for n in os.listdir(LESSONS) if n.endswith(".ipynb") and n not in WIDGET_LESSONS)
SETTINGS = {  # JupyterLab user settings: every cell in the page (no windowing), no news or update pop-ups
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false", "checkForUpdates": false}',
}
RUN_ALL_SECONDS = 300  # one lesson, all cells, on 2 busy cores
WIDGET_SECONDS = 30  # one widget's redraw
TRACEBACK = "Traceback (most recent call last)"
# The status bar's kernel item reads "Python 3 (ipykernel) | Idle" once the kernel is started, connected and idle
# (the toolbar's indicator already says idle before the kernel starts, and a run started then is dropped).
KERNEL_IDLE = "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => e.textContent.endsWith('| Idle'))"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder):
    for name, text in SETTINGS.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)


def wait_for_server(url, server, log_path):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            urllib.request.urlopen(url + "api/status", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    with open(log_path) as log:
        pytest.fail(f"JupyterLab did not start at {url}:\n{log.read()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of lessons/; yields its URL."""
    home = tmp_path_factory.mktemp("lab")
    lessons = shutil.copytree(LESSONS, home / "lessons", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    write_settings(home / "settings")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # kernels keep their inline backend
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port = free_port()
    log_path = home / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
                                   f"--ServerApp.port={port}", "--ServerApp.token=", "--ServerApp.password=",
                                   f"--ServerApp.root_dir={lessons}"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(url, server, log_path)
        yield url
    finally:
        server.terminate()  # shuts its kernels down too
        server.wait(timeout=60)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = os.environ.get("MINILM_SCREENSHOTS") or str(tmp_path_factory.mktemp("screenshots"))
    os.makedirs(folder, exist_ok=True)
    return folder


def click_menu(page, menu, item):
    page.get_by_role("menuitem", name=menu, exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def run_all_cells(page):
    """Clear every output, run all cells, and wait until the last cell has run (or a cell failed, which stops
    the run) and the kernel is idle."""
    click_menu(page, "Edit", "Clear Outputs of All Cells")
    click_menu(page, "Run", "Run All Cells")
    page.wait_for_function("""traceback => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
        const outputs = [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent);
        return %s && (/\\d/.test(prompts.at(-1)) || outputs.some(text => text.includes(traceback)));
    }""" % KERNEL_IDLE, arg=TRACEBACK, timeout=RUN_ALL_SECONDS * 1000)


def cell_problems(page):
    """Code cells that did not run, and outputs that show a traceback."""
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    not_run = [f"cell {n} did not run" for n, p in enumerate(prompts) if not any(ch.isdigit() for ch in p)]
    errors = [text for text in page.locator(".jp-OutputArea-output").all_inner_texts() if TRACEBACK in text]
    return not_run + errors


def move_first_control(page, widget):
    """What a learner does first: drag the slider, pick the next option, or type in the text box."""
    control = widget.locator(".noUi-handle, select, input[type=text]").first
    kind = control.evaluate("e => e.tagName === 'SELECT' ? 'select' : e.tagName === 'INPUT' ? 'text' : 'slider'")
    if kind == "select":
        options = control.locator("option").count()
        control.select_option(index=(control.evaluate("e => e.selectedIndex") + 1) % options)
    elif kind == "text":
        control.fill(control.input_value() + " .")
        control.press("Enter")
    else:  # drag the handle a quarter of the track, towards the track's far side
        handle, track = control.bounding_box(), widget.locator(".noUi-base").bounding_box()
        y = handle["y"] + handle["height"] / 2
        x = handle["x"] + handle["width"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + (track["width"] if x < track["x"] + track["width"] / 2 else -track["width"]) / 4, y)  # one step: one value
        page.mouse.up()
    return kind


def output_after_change(page, output, before):
    """The widget's output HTML once it differs from `before` and the kernel is idle again (or as it is when
    WIDGET_SECONDS run out)."""
    deadline = time.monotonic() + WIDGET_SECONDS
    while output.inner_html() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    page.wait_for_function(f"() => {KERNEL_IDLE}", timeout=WIDGET_SECONDS * 1000)
    return output.inner_html()


def open_lesson(browser, lab, lesson):
    """A page showing the lesson in a fresh workspace (?reset: this notebook alone), once its kernel is idle."""
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{lab}lab/tree/{lesson}?reset")
    page.wait_for_function(f"() => {KERNEL_IDLE}", timeout=120_000)
    return page


@pytest.mark.parametrize("lesson", WIDGET_LESSONS)
def test_a_widget_lesson_runs_in_jupyterlab_and_its_widgets_respond(lab, browser, screenshots, lesson):
    page = open_lesson(browser, lab, lesson)
    try:
        run_all_cells(page)
        assert cell_problems(page) == []
        widgets = page.locator(".jp-Notebook .widget-interact").all()
        assert widgets, "no widget drawn: the lesson's ipywidgets.interactive call showed nothing"
        for n, widget in enumerate(widgets):
            widget.scroll_into_view_if_needed()
            output = widget.locator(".widget-output")
            before = output.inner_html()
            kind = move_first_control(page, widget)
            after = output_after_change(page, output, before)
            assert after != before, f"widget {n}: its output did not change when its {kind} moved"
            assert "jp-OutputArea-output" in after and TRACEBACK not in output.inner_text(), f"widget {n} ({kind}): {output.inner_text()[:500]}"
        widgets[0].evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")  # the screenshot's view
    finally:
        page.screenshot(path=os.path.join(screenshots, lesson.replace(".ipynb", ".png")))
        page.close()


@pytest.mark.parametrize("lesson", OTHER_LESSONS)
def test_a_lesson_without_widgets_opens_in_jupyterlab_with_its_committed_run(lab, browser, screenshots, lesson):
    page = open_lesson(browser, lab, lesson)
    try:
        assert page.locator(".jp-CodeCell").count() > 0 and page.locator(".jp-OutputArea-output").count() > 0
        assert cell_problems(page) == []
    finally:
        page.screenshot(path=os.path.join(screenshots, lesson.replace(".ipynb", ".png")))
        page.close()
