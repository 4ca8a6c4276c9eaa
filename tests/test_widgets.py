"""Each lesson's widgets, driven in a real kernel: moving a widget's first control shows a new figure or view
inside the widget, and emptying a text box (a sentence the view cannot take) gives one line there, not a traceback.

nbclient runs the lesson's cells and stands in for JupyterLab: like the browser, it routes what the kernel
displays inside a widget's `with out:` to that Output widget and keeps the outputs. (tests/test_browser.py
checks the first part in a real JupyterLab.)

Why these tests once hung, and why they no longer can. nbclient's stand-in for an Output widget sends the
widget's new state back to the kernel on the shell socket, from inside the same event loop that is waiting on
that socket for the cell's execute_reply. Now and then the reply arrives and the waiting poll is never woken:
on 2026-12-04, under a training run on the other core, lesson 03 waited 600.0 s for a reply that its header
dated 599.7 s before it was read (a cell that sets two widget values; one run in two hung). The message sat in
the socket; only the poll's own timeout looked again. So every wait for a kernel message here polls in slices
of SLICE seconds (a fresh poll first checks the socket for a message already there), and a kernel that sends
nothing for MESSAGE_LIMIT seconds fails the test instead of hanging it."""
import copy
import functools
import os
import time
from queue import Empty

import nbformat
import pytest
from nbclient import NotebookClient

from minilm.course.paths import LESSONS
from tests.helpers import widget_lessons

WIDGET_LESSONS = widget_lessons()
TEXT_LESSONS = ["01_next_token_loss.ipynb", "02_attention_masks.ipynb"]  # their widgets take a typed sentence
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SLICE = 0.5  # seconds: how often a wait for the next kernel message looks at the socket again
MESSAGE_LIMIT = 300  # seconds without a message the test waits for: the cell fails

# Run one after the other right after a widget cell, on the widget it returned (`widget`): what a learner does.
MOVE_FIRST_CONTROL = """
control = widget.children[0]
if hasattr(control, "options"):
    control.index = (control.index + 1) % len(control.options)
elif isinstance(control.value, str):
    control.value += " ."
else:
    control.value = control.max if control.value != control.max else control.min
"""
EMPTY_TEXT_BOXES = """
import ipywidgets
for control in widget.children:
    if isinstance(control, ipywidgets.Text):
        control.value = ""
"""


def poll_in_slices(channel):
    """Make a client channel's waits for a message poll every SLICE seconds, for at most MESSAGE_LIMIT in all
    (or the caller's own timeout, if shorter): a message that arrived unannounced is read within SLICE."""
    wait = channel.get_msg

    async def get_msg(timeout=None):
        deadline = time.monotonic() + (MESSAGE_LIMIT if timeout is None else min(timeout, MESSAGE_LIMIT))
        while True:
            try:
                return await wait(timeout=min(SLICE, max(0.0, deadline - time.monotonic())))
            except Empty:
                if time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


def widget_model_id(cell):
    """The model id of the widget a cell returned, or None."""
    views = [o["data"][WIDGET_VIEW] for o in cell.outputs if o.get("output_type") == "execute_result" and WIDGET_VIEW in o["data"]]
    return views[0]["model_id"] if views else None


def children(client, model_id):
    """The states of an interactive widget's children: its controls, then its Output."""
    return [client.widget_state[c.removeprefix("IPY_MODEL_")] for c in client.widget_state[model_id]["children"]]


def output_area(client, model_id):
    """The outputs the front end holds for an interactive widget's Output child."""
    return next(c for c in children(client, model_id) if c["_model_name"] == "OutputModel")["outputs"]


def has_text_box(client, model_id):
    return any(c["_model_name"] == "TextModel" for c in children(client, model_id))


@functools.cache
def widget_runs(lesson):
    """Run a lesson's code cells up to its last widget; after each widget cell, run MOVE_FIRST_CONTROL, then
    EMPTY_TEXT_BOXES. Returns, per widget, whether it has a text box and its output area's outputs as the cell
    left them, after the move, and after emptying its text boxes."""
    cells = [c for c in nbformat.read(lesson, as_version=4).cells if c.cell_type == "code"]
    last = max(i for i, c in enumerate(cells) if "ipywidgets.interactive(" in c.source)
    nb = nbformat.v4.new_notebook(cells=cells[: last + 1])
    client = NotebookClient(nb, kernel_name="python3", timeout=MESSAGE_LIMIT, iopub_timeout=60,
                            raise_on_iopub_timeout=True,
                            resources={"metadata": {"path": os.path.dirname(lesson)}})
    runs = []
    with client.setup_kernel():
        for channel in (client.kc.shell_channel, client.kc.iopub_channel):
            poll_in_slices(channel)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
            model_id = widget_model_id(cell)
            if model_id is None:
                continue
            states = [copy.deepcopy(output_area(client, model_id))]
            for action in (MOVE_FIRST_CONTROL, EMPTY_TEXT_BOXES):
                code = f"widget = Out[{cell.execution_count}]\n{action}"  # not `_`: a lesson may assign `_` itself
                client.execute_cell(nbformat.v4.new_code_cell(code), index)
                states.append(copy.deepcopy(output_area(client, model_id)))
            runs.append({"text_box": has_text_box(client, model_id), "outputs": states})
    return runs


def views(outputs):
    """The figures and HTML views among a widget's outputs."""
    return [o["data"] for o in outputs if o["output_type"] == "display_data" and {"image/png", "text/html"} & set(o["data"])]


@pytest.mark.parametrize("lesson", WIDGET_LESSONS, ids=os.path.basename)
def test_moving_a_widgets_first_control_shows_a_new_view_inside_it(lesson):
    runs = widget_runs(lesson)
    assert runs, "the lesson's widgets did not run"
    for n, run in enumerate(runs):
        built, moved = run["outputs"][:2]
        assert not [o for o in moved if o["output_type"] == "error"], f"widget {n} shows an error"
        assert views(moved), f"widget {n} shows no figure or view after its first control moved"
        assert moved != built, f"widget {n} shows the same output as before its first control moved"


@pytest.mark.parametrize("lesson", TEXT_LESSONS)
def test_an_emptied_text_box_gives_one_line_inside_the_widget(lesson):
    runs = [run for run in widget_runs(os.path.join(LESSONS, lesson)) if run["text_box"]]
    assert runs, "no widget with a text box"
    for run in runs:
        emptied = run["outputs"][-1]
        assert [o["output_type"] for o in emptied] == ["stream"], emptied
        assert emptied[0]["text"].strip() and "\n" not in emptied[0]["text"].strip(), emptied[0]["text"]


@pytest.mark.parametrize("lesson", WIDGET_LESSONS, ids=os.path.basename)
def test_every_widget_line_shows_what_its_view_returns(lesson):
    """The cheap check of the lessons' widgets, in the default run: ipywidgets.interactive shows only open figures
    and printed output unless it is asked to display what the view returns ({"auto_display": True}), and
    the lessons' views return their figures closed. A widget line without it draws nothing in JupyterLab
    (lessons 01 and 03 did exactly that)."""
    lines = [line for c in nbformat.read(lesson, as_version=4).cells if c.cell_type == "code"
             for line in c.source.splitlines() if "ipywidgets.interactive(" in line]
    assert lines and all('{"auto_display": True}' in line for line in lines), lines
