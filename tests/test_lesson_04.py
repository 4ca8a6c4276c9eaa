"""Lesson 04 is committed executed, runs top to bottom under nbval, and its interactive view works."""
import os
import subprocess
import sys

import matplotlib.pyplot as plt
import nbformat
import pytest

from minilm import inverse_scaling as isc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON = "lessons/04_inverse_scaling_glib.ipynb"


def test_lesson_is_committed_with_its_outputs():
    cells = [c for c in nbformat.read(os.path.join(ROOT, LESSON), as_version=4).cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))  # top to bottom, once
    assert sum(any(o.get("output_type") == "display_data" for o in c.outputs) for c in cells) >= 4  # figures
    assert not any(o.get("output_type") == "error" for c in cells for o in c.outputs)
    text = "".join(o.get("text", "") for c in cells for o in c.outputs)
    assert "python -m minilm glib --preset full" in text and "U-shape: " in text


def test_lesson_runs_under_nbval():
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("MPLBACKEND", None)  # kernels keep their inline backend
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                          "--nbval-current-env", LESSON], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]


def test_next_word_view_and_its_widget():
    import ipywidgets

    results = isc.load_results(os.path.join(ROOT, isc.results_path("full")))
    sizes = [isc.Size(**s).name for s in results["config"]["sizes"]]
    fig = isc.show_next_words(results, sizes[-1], isc.WIDGET_PROMPTS[0])
    ax = fig.axes[0]
    top_down = [label.get_text() for _, label in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda t: -t[0])]
    point = results["points"][isc.point_key("main", isc.Size(**results["config"]["sizes"][-1]), 0)]
    assert top_down == [w for w, _ in point["next_words"][isc.WIDGET_PROMPTS[0]]]  # most likely on top
    plt.close(fig)
    w = ipywidgets.interactive(lambda size, prompt: isc.show_next_words(results, size, prompt),
                               size=ipywidgets.Dropdown(options=sizes), prompt=ipywidgets.Dropdown(options=isc.WIDGET_PROMPTS))
    w.children[0].value = sizes[1]  # move the size picker: the view redraws for that size
    assert w.result.axes[0].get_title().startswith(sizes[1] + ":")
    plt.close("all")
