"""Lesson 04 prints the command that made its results and the U-shape verdict, and its next-word view
and widget work. (Every lesson runs under nbval in the default suite: pytest collects lessons/.)"""
import json
import os

import ipywidgets
import matplotlib.pyplot as plt
import nbformat

from minilm import experiments, glib_stats, plots
from minilm import inverse_scaling as isc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON = os.path.join(ROOT, "lessons", "04_inverse_scaling_glib.ipynb")


def load(preset):
    return experiments.load_results(os.path.join(ROOT, isc.results_path(preset)), "glib")


def test_lesson_shows_its_command_the_verdict_and_its_figures():
    cells = [c for c in nbformat.read(LESSON, as_version=4).cells if c.cell_type == "code"]
    text = "".join(o.get("text", "") for c in cells for o in c.outputs)
    results = load("full")
    verdict = glib_stats.u_shape(glib_stats.curves(results).subset(glib_stats.most_exposed_quotes(results))).line
    assert "python -m minilm glib --preset full" in text
    assert verdict in text  # the committed outputs are those of the committed results
    assert sum(any(o.get("output_type") == "display_data" for o in c.outputs) for c in cells) >= 4


def test_next_word_view_and_its_widget():
    results = load("full")
    sizes = [isc.Size(**s).name for s in results["config"]["sizes"]]
    fig = plots.show_next_words(results, sizes[-1], isc.WIDGET_PROMPTS[0])
    ax = fig.axes[0]
    top_down = [label.get_text() for _, label in sorted(zip(ax.get_yticks(), ax.get_yticklabels()), key=lambda t: -t[0])]
    point = results["points"][isc.point_key("main", isc.Size(**results["config"]["sizes"][-1]), 0)]
    assert top_down == [w for w, _ in point["next_words"][isc.WIDGET_PROMPTS[0]]]  # most likely on top
    plt.close(fig)
    w = ipywidgets.interactive(lambda size, prompt: plots.show_next_words(results, size, prompt),
                               size=ipywidgets.Dropdown(options=sizes), prompt=ipywidgets.Dropdown(options=isc.WIDGET_PROMPTS))
    w.children[0].value = sizes[1]  # move the size picker: the view redraws for that size
    assert w.result.axes[0].get_title().startswith(sizes[1] + ":")
    plt.close("all")


def test_second_sweep_is_complete_its_verdict_is_in_the_lesson_and_it_contains_the_knob_cell():
    """The r = 0.15 sweep (chosen from the knob map) holds every point of its preset; the lesson prints its
    verdict; and its seed 0 at the knob sizes is the knob-map cell it was chosen from, number for number."""
    first = load("full")
    second = load("rare15")
    assert second["config"] == json.loads(json.dumps(isc.PRESETS["rare15"].to_dict()))
    assert set(second["points"]) == {isc.point_key(*p) for p in isc.PRESETS["rare15"].points()}
    cells = [c for c in nbformat.read(LESSON, as_version=4).cells if c.cell_type == "code"]
    text = "".join(o.get("text", "") for c in cells for o in c.outputs)
    assert glib_stats.u_shape(glib_stats.curves(second).subset(glib_stats.most_exposed_quotes(second))).line in text
    for s in first["config"]["knob_sizes"]:
        size = isc.Size(**s)
        knob_cell = first["points"][isc.point_key("r=0.15", size, 0)]
        assert second["points"][isc.point_key("main", size, 0)]["probes"] == knob_cell["probes"]
