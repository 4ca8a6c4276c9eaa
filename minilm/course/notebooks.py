"""The exercise notebooks, generated from their sources.

Each exercise has one source, `exercises/sources/NN_topic.py`, a script in jupytext's "percent" format
(`# %%` starts a code cell, `# %% [markdown]` a text cell, `tags=["graded"]` tags it). The reference solution
sits between `### BEGIN SOLUTION` and `### END SOLUTION`. From it we write the student notebook
`exercises/NN_topic.ipynb` (the solution replaced by `# YOUR CODE HERE` and `raise NotImplementedError()`) and
`exercises/solutions/NN_topic.ipynb` (the solution kept). Regenerate both with
`python -m minilm.course.notebooks`.
"""
from pathlib import Path

from ..errors import MinilmError
from .paths import EXERCISES, ROOT, SOURCES


GRADED_TAG = "graded"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
# What must never sit on a graded cell: each would let a check pass (or be skipped) without the learner's code.
FORBIDDEN_TAGS = ("raises-exception", "nbval-skip", "skip-execution", "nbval-ignore-output")
FORBIDDEN_MARKERS = ("NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION", "NBVAL_IGNORE_OUTPUT")


def is_graded(cell):
    return GRADED_TAG in cell.metadata.get("tags", [])


def source_cells(path):
    """The cells of an exercise source, read by jupytext: a list of (kind, source, tags)."""
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    return [(cell.cell_type, cell.source, cell.metadata.get("tags", [])) for cell in nb.cells]


def strip_solutions(code, keep, name="source"):
    """Remove the solution markers; keep=True keeps the code between them, False puts the stub there."""
    out, inside = [], False
    for line in code.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise MinilmError(f"{name}: '{BEGIN}' inside another solution block")
            inside = True
            if not keep:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + stub_line for stub_line in STUB)
        elif stripped == END:
            if not inside:
                raise MinilmError(f"{name}: '{END}' without a '{BEGIN}' before it")
            inside = False
        elif keep or not inside:
            out.append(line)
    if inside:
        raise MinilmError(f"{name}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def build_notebook(source_path, solution):
    """The notebook made from one exercise source: the student version, or the solution version.

    Only each cell's kind, source and tags are kept (not jupytext's own metadata), with stable ids."""
    import nbformat

    source_path = Path(source_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text, tags) in enumerate(source_cells(source_path)):
        cell_id = f"{source_path.stem[:50]}-{i:02d}"  # stable ids: regenerating changes nothing
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text, id=cell_id)
        else:
            cell = nbformat.v4.new_code_cell(strip_solutions(text, solution, source_path.name), id=cell_id)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def notebook_text(nb):
    """The exact text a notebook is committed as."""
    import nbformat

    return nbformat.writes(nb) + "\n"


def exercise_sources(sources=SOURCES):
    return sorted(Path(sources).glob("[0-9][0-9]_*.py"))


def generated_notebooks(sources=SOURCES, exercises=EXERCISES):
    """{path of a notebook the generator writes: its text}, for every exercise source."""
    out = {}
    for source in exercise_sources(sources):
        name = source.stem + ".ipynb"
        out[Path(exercises) / name] = notebook_text(build_notebook(source, solution=False))
        out[Path(exercises) / "solutions" / name] = notebook_text(build_notebook(source, solution=True))
    return out


def write_notebooks(sources=SOURCES, exercises=EXERCISES):
    """Regenerate every student and solution notebook from the sources; returns the paths written."""
    notebooks = generated_notebooks(sources, exercises)
    for path, text in notebooks.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(notebooks)


if __name__ == "__main__":
    for written in write_notebooks():
        print(f"wrote {written.relative_to(ROOT)}")
