"""Small helpers the test files share."""
import numpy as np

from minilm import backend
from minilm.course.paths import LESSONS

# The suite runs on the GPU with MINILM_DEVICE=cuda. There, sums over many values (the embedding's
# gradient is gathered with atomic adds) run in an order that changes from run to run, so a result
# repeats to float rounding, not bit for bit as it does on the CPU.
ON_GPU = backend.get_xp() is not np


def widget_lessons():
    """The lessons that make a widget (an ipywidgets.interactive call), as paths, in course order."""
    return [str(p) for p in sorted(LESSONS.glob("*.ipynb")) if "ipywidgets.interactive(" in p.read_text()]


def roughen(model, rng, scale):
    """Add Gaussian noise of this scale to every parameter, in place, on the model's device: away from
    the initial values (biases 0, gains 1, tiny weights), no gradient is trivially 0 or lost in
    finite-difference noise, and a model's outputs are far from uniform."""
    for p in model.params.values():
        p += model.xp.asarray(rng.standard_normal(p.shape) * scale, dtype=p.dtype)
    return model


def square(point):
    """A sweep point for tests of minilm.studies.runner that trains nothing: point = (x, kill_marker). The
    first process that runs x == 3 with a marker path kills itself (SIGKILL: no clean-up, no exception),
    as a worker lost to the out-of-memory killer or a pulled plug would die."""
    import os
    import signal
    import time

    x, kill_marker = point
    if kill_marker and x == 3 and not os.path.exists(kill_marker):
        open(kill_marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return {"x": x, "square": x * x, "pid": os.getpid()}


def within_seed_band(value, committed_seeds, floor, center=None):
    """Is a re-trained value within what the committed seeds of the same point say is reproducible?

    On another CPU, BLAS rounds differently, and training turns the last bit into the spread that
    another seed gives (docs/architecture.md, "Reproducible on any CPU"). So a re-trained point must land within
    mean +- 3 standard deviations of its seeds, or +- floor where the seeds agree more closely than
    that. A point committed with one seed only (a knob-map cell) is given center, its committed value,
    and the spread of the seeds of a neighbouring point (the same size). Returns (ok, message)."""
    from minilm.studies.stats import seed_band

    seeds = np.asarray(committed_seeds, dtype=float)
    mean, half_width = seed_band(seeds, floor)
    center = mean if center is None else center
    ok = abs(value - center) <= half_width
    return ok, (f"{value:.4f} re-trained, committed {center:.4f}, seeds {np.round(seeds, 4).tolist()} "
                f"(band +-{half_width:.4f})")


def wait_forever(pid_file):
    """A sweep point that never finishes on its own: it writes its process id, then sleeps."""
    import os
    import time

    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)


CLAIM, MEASURED, MAP = "**The lecture's claim.**", "**Measured here.**", "**Where the lecture says it**"


def first_screen(notebook):
    """A lesson's opening: {"title", "claim", "measured", "map", "rest"}, each paragraph's lines joined with single
    spaces. The first cell is the one screen before the figure: the title, then the paragraphs that start with CLAIM
    and MEASURED (the verdict), then anything short (the lecture named, what the lesson recalls). The map to the
    lecture comes after the figure, in the markdown cell that has a paragraph starting with MAP, as [(the sections it
    names, e.g. [3, 4], the moment)]; rest is what follows the map in that cell (the lesson's own list of what it
    shows). Raises AssertionError where the form is not kept."""
    import re

    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    assert cells[0].cell_type == "markdown", f"{notebook}: the first cell is not markdown"
    paragraphs = cells[0].source.split("\n\n")
    leads = [next((i for i, p in enumerate(paragraphs) if p.startswith(lead)), None) for lead in (CLAIM, MEASURED)]
    assert leads == [1, 2], f"{notebook}: the title, then {CLAIM}, {MEASURED}: {leads}"
    with_map = [c.source.split("\n\n") for c in cells if c.cell_type == "markdown"
                and any(p.startswith(MAP) for p in c.source.split("\n\n"))]
    assert len(with_map) == 1, f"{notebook}: one markdown cell has the paragraph led by {MAP}"
    after = with_map[0][next(i for i, p in enumerate(with_map[0]) if p.startswith(MAP)) + 1:]
    items = re.split(r"\n(?=\* )", after[0])
    assert all(item.startswith("* §") for item in items), f"{notebook}: the map's items start with '* §N'"
    sections = [(list(range(int(a), int(b or a) + 1)), moment)
                for a, b, moment in (re.match(r"\* §(\d+)(?:–§(\d+))? ↔ (.*)", " ".join(item.split()), re.S).groups()
                                     for item in items)]
    flat = lambda text: " ".join(text.split())  # noqa: E731
    return {"title": paragraphs[0], "claim": flat(paragraphs[1]), "measured": flat(paragraphs[2]), "map": sections,
            "rest": "\n\n".join(after[1:])}


def sentences(text):
    """How many sentences the text has, its italic quotes (*...*) and its bold lead left out."""
    import re

    plain = re.sub(r"\*\*[^*]+\*\*|\*[^*]+\*", "", text)
    return len(re.findall(r"[.?!][\"”')]?(?:\s|$)", plain))


def course_map_row(lesson):
    """The course map's row of a lesson (its notebook's name without .ipynb) in docs/course.md, its words joined by
    single spaces."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "course.md").read_text(encoding="utf-8")
    section = readme.split("## The course", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| `{lesson}` |")]
    assert len(rows) == 1, f"the README's course map has {len(rows)} rows for {lesson}"
    return " ".join(rows[0].split())
