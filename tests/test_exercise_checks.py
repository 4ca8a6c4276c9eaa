"""Each exercise check, run in this process: it passes the solution, and it fails each plausible wrong
solution with the message that names the mistake. Fast (no kernels): the solution notebook's code cells are
executed in a namespace, as a kernel would, and the checks are called on it. The class grade, which runs the
same checks on what the answers give back in a process of their own, agrees with them on every notebook."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from exercise_mutations import MUTATIONS
from minilm import MinilmError
from minilm.course import checks, grader, notebooks, paths

STEMS = [source.stem for source in notebooks.exercise_sources()]


def namespace(source_path):
    """The globals of the solution notebook built from a source, after running its code cells (not the
    graded ones, nor the instant check(...) calls, which print)."""
    ns = {}
    for cell in notebooks.build_notebook(source_path, solution=True).cells:
        if cell.cell_type == "code" and not grader.is_graded(cell) and not cell.source.startswith("check("):
            exec(compile(cell.source, f"{source_path}", "exec"), ns)
    return ns


def check_names(stem):
    return [check.__name__ for check in checks.ExerciseChecks(stem, {}).checks]


CHECKS = [(stem, name) for stem in STEMS for name in check_names(stem)]


@pytest.fixture(scope="module")
def solutions():
    return {stem: namespace(paths.SOURCES / f"{stem}.py")["check"] for stem in STEMS}


@pytest.mark.parametrize("stem, name", CHECKS, ids=[f"{s}:{n}" for s, n in CHECKS])
def test_check_passes_the_solution_and_fails_a_wrong_one(solutions, stem, name):
    check = solutions[stem]
    assert check.problem(getattr(check.module, name)) == ""
    catching = [m.name for m in MUTATIONS if m.exercise == stem and name in m.catches]
    assert catching, f"no plausible wrong solution shows that check {name} of {stem} can fail"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflows some wrong solutions make
@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_wrong_solution_fails_with_the_message_that_names_the_mistake(tmp_path, mutation):
    source = tmp_path / f"{mutation.exercise}.py"
    source.write_text(mutation.source())
    check = namespace(source)["check"]
    for name, expect in mutation.catches.items():
        problem = check.problem(getattr(check.module, name))
        assert expect in problem, f"check {name} must say '{expect}', got: {problem or 'pass'}"
        assert check.problem(getattr(check.module, name)) == problem, "a check must give the same verdict on every run"


@pytest.mark.parametrize("name", ["cache-mask-without-the-offset-square", "cache-mask-without-the-offset-diagonal",
                                  "decode-rebuilds-the-cache-each-step"])
def test_kv_cache_bugs_fail_on_every_run(tmp_path, name):
    """The two KV-cache bugs that used to slip through (a mask without the cache's offset, a cache rebuilt at
    every step) fail in fresh notebooks, run after run: nothing in the checks depends on luck."""
    mutation = next(m for m in MUTATIONS if m.name == name)
    source = tmp_path / f"{mutation.exercise}.py"
    source.write_text(mutation.source())
    for _ in range(5):
        check = namespace(source)["check"]
        for check_name, expect in mutation.catches.items():
            assert expect in check.problem(getattr(check.module, check_name))


def test_encoding_each_merge_once_in_learned_order_passes(tmp_path):
    """Exercise 10's question: for merges learned by merge steps, applying each merge once in the order learned
    gives the tokens of merging by rank, so the checks must pass it (a right answer is never failed)."""
    from exercise_mutations import BPE_LOOP, Mutation
    in_order = Mutation("10_bpe", "bpe-encode-each-merge-once-in-order", BPE_LOOP,
                        "for rank, pair in enumerate(merges):  # each merge once, in the order learned\n"
                        "        ids = merge(ids, pair, 256 + rank)", {})
    source = tmp_path / "10_bpe.py"
    source.write_text(in_order.source())
    check = namespace(source)["check"]
    assert [check.problem(c) for c in check.module.PARTS["encode_chunk"]] == ["", "", ""]


@pytest.mark.parametrize("stem", STEMS)
def test_checks_draw_from_fixed_seeds(stem):
    """Unseeded randomness would let a wrong answer pass on a lucky run."""
    text = (paths.CHECKS / f"{stem}.py").read_text()
    assert "default_rng()" not in text and "np.random." not in text.replace("np.random.default_rng(", "")


def test_every_mutation_names_real_checks():
    for m in MUTATIONS:
        assert set(m.catches) <= set(check_names(m.exercise)), m.name


@pytest.mark.parametrize("stem", STEMS)
def test_graded_cells_run_the_checks_in_order(stem):
    """Graded cell k is '# Check k: <the check's first docstring line>' then check.graded("<its name>")."""
    exercise = checks.ExerciseChecks(stem, {})
    graded = [cell.source for cell in grader.code_cells(paths.EXERCISES / f"{stem}.ipynb") if grader.is_graded(cell)]
    assert graded == [f'# {exercise.title(c)}\ncheck.graded("{c.__name__}")' for c in exercise.checks]


@pytest.mark.parametrize("stem", STEMS)
def test_each_part_has_its_check_cell_and_staged_hints(stem):
    """After each part: a check("part") cell, then a markdown cell of 2-3 collapsed hints that ends with the
    pointer to the solution."""
    cells = grader.read_notebook(paths.EXERCISES / f"{stem}.ipynb").cells
    parts = checks.load_checks(stem).PARTS
    calls = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.startswith("check(")]
    assert [cells[i].source for i in calls] == [f'check("{part}")' for part in parts]
    for i in calls:
        hints = cells[i + 1].source
        assert cells[i + 1].cell_type == "markdown" and 2 <= hints.count("<summary>Hint") <= 3, f"{stem}: cell {i + 1}"
        assert hints.count("<details>") == hints.count("</details>") == hints.count("<summary>Hint")
        assert hints.rstrip().endswith(f"`solutions/{stem}.ipynb` holds a worked solution."), f"{stem}: cell {i + 1}"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_instant_check_prints_pass_or_the_mistake(tmp_path, capsys):
    mutation = next(m for m in MUTATIONS if m.name == "softmax-without-max-subtraction")
    source = tmp_path / f"{mutation.exercise}.py"
    source.write_text(mutation.source())
    namespace(source)["check"]("softmax")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "pass Check 1: softmax gives rows of probabilities that match the reference"
    assert lines[1] == "FAIL Check 2: softmax stays finite on large logits" and "exp(1000) overflows" in lines[2]
    assert len(lines) == 3


def test_instant_check_on_a_stub_says_not_implemented(capsys):
    stub = {}
    for cell in grader.code_cells(paths.EXERCISES / "06_power_law_fit.ipynb"):
        if not grader.is_graded(cell) and not cell.source.startswith("check("):
            exec(cell.source, stub)
    stub["check"]()
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[::2]] == [f"FAIL Check {i}" for i in range(1, 5)]
    assert all("not implemented yet: fit_power_law still raises" in line or "predict_loss still raises" in line for line in out[1::2])


def test_a_graded_cell_raises_what_the_instant_check_prints(solutions):
    check = checks.ExerciseChecks("01_softmax_cross_entropy", {"softmax": lambda logits: logits})
    printed = check.problem(check.module.softmax_rows)
    with pytest.raises(AssertionError) as raised:
        check.graded("softmax_rows")
    assert printed and str(raised.value) == printed


def test_a_check_of_an_undefined_function_says_which():
    check = checks.ExerciseChecks("02_attention_masks", {})
    assert check.problem(check.module.cross) == "cross_mask is not defined yet: run the cell that defines it first"
    with pytest.raises(MinilmError, match="the parts are bidirectional_mask, causal_mask"):
        check("cross")


# ---- the class grade (answers in a child process, judged in the grader's) agrees with the learner's check

HONEST = [*(f"solution-{stem}" for stem in STEMS), *(m.name for m in MUTATIONS)]


def honest_source(name, folder):
    """The source of a solution (solution-NN_topic) or of a plausible wrong one (a mutation's name)."""
    if name.startswith("solution-"):
        return paths.SOURCES / f"{name.removeprefix('solution-')}.py"
    mutation = next(m for m in MUTATIONS if m.name == name)
    source = folder / f"{mutation.exercise}__{name}.py"
    source.write_text(mutation.source())
    return source


@pytest.fixture(scope="module")
def class_grade(tmp_path_factory):
    """{name: (the source, its Score from the class grade)} for every solution and wrong solution, each in a
    learner's folder of its own (graded two at a time: each runs in its own child process)."""
    folder = tmp_path_factory.mktemp("class")
    sources = {}
    for name in HONEST:
        sources[name] = honest_source(name, folder)
        notebook = folder / "class" / name / f"{sources[name].stem.split('__')[0]}.ipynb"
        notebook.parent.mkdir(parents=True)
        notebook.write_text(notebooks.notebook_text(notebooks.build_notebook(sources[name], solution=True)))
    with ThreadPoolExecutor(2) as pool:
        scores = pool.map(lambda submission: grader.grade_submission(*submission), grader.class_submissions(folder / "class"))
        return {score.learner: (sources[score.learner], score) for score in scores}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", HONEST)
def test_the_class_grade_agrees_with_the_learners_check(class_grade, name):
    """Same score, check by check, and the same messages, from the learner's check(...) in the kernel and from
    the class grade; an honest notebook is never flagged."""
    source, score = class_grade[name]
    check = namespace(source)["check"]
    problems = [check.problem(c) for c in check.checks]
    assert score.passed == [not p for p in problems]
    assert score.feedback == grader.feedback([check.title(c) for c in check.checks], [(not p, p) for p in problems])
    assert ("solution" in name) == all(score.passed)
