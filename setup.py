"""The wheel carries the course: setuptools builds minilm as pyproject.toml says, and this step copies the
checkout's lessons/ (with their results) and exercises/ (sources, checks, the notebooks and their solutions)
into the built package as minilm/course/_data/, where minilm.course.paths finds them when minilm is not
imported from a checkout. An editable install needs no copy: it imports from the checkout itself."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
COURSE = ("lessons", "exercises")  # the folders of the checkout that the wheel carries
LEFT_OUT = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", ".DS_Store")


class build_py_with_course(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        data = Path(self.build_lib) / "minilm" / "course" / "_data"
        for folder in COURSE:
            if not (HERE / folder).is_dir():
                raise SystemExit(f"cannot build minilm: {HERE / folder} is missing (build from a checkout or an sdist)")
            shutil.rmtree(data / folder, ignore_errors=True)
            shutil.copytree(HERE / folder, data / folder, ignore=LEFT_OUT)


setup(cmdclass={"build_py": build_py_with_course})
