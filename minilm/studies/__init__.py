"""The studies: experiments that train many models and measure a claim of the lecture.

Each study is what it trains (its presets, points and measurements: scaling.py, isoflop.py, structure.py,
glib.py) and how it is analysed (its report: scaling_report.py, isoflop_report.py, structure_report.py,
glib_report.py; the small archs.py, instruct.py, proverbs.py and architecture.py keep both in one
module), on one runner and results store (runner.py) and one statistics module (stats.py). Each declares a
runner.Study; `python -m minilm` registers one command per entry of all_studies().
"""


def all_studies():
    """Every study, in the order of the lessons (imported when asked for: each pulls in the engine)."""
    from . import (architecture, archs, glib_report, instruct, isoflop_report, preference, proverbs,
                   scaling_report, structure_report)
    return (archs.STUDY, scaling_report.STUDY, isoflop_report.STUDY, glib_report.STUDY, structure_report.STUDY,
            instruct.STUDY, proverbs.STUDY, preference.STUDY, architecture.STUDY)
