"""Lesson 03's sentences that state a number, a comparison or a shape, checked against the committed sweep
(lessons/results/scaling_lesson03.json) and the outputs they sit beside. (The lesson itself runs under nbval in
the default suite; tests/test_scaling.py checks the sweep is complete and re-trains one of its points.)"""
import os
import re

import nbformat
import numpy as np
import pytest

from minilm.course import guess
from minilm.studies import runner, scaling_report, stats
from minilm.data import toyworld
from minilm.model import GPT, GPTConfig
from minilm.tokenizer import WordTokenizer
from tests.helpers import course_map_row, first_screen, sentences
from tests.test_lesson_01 import output_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON = os.path.join(ROOT, "lessons", "03_scaling_curves.ipynb")


@pytest.fixture(scope="module")
def results():
    return runner.load_results(os.path.join(ROOT, "lessons", "results", "scaling_lesson03.json"), "scaling")


@pytest.fixture(scope="module")
def groups(results):
    return scaling_report.size_family(results)


@pytest.fixture(scope="module")
def fit(results):
    """scaling_report.loss_fit: (compute, per-seed loss, the law on all sizes, its exponent's 95% interval)."""
    return scaling_report.loss_fit(results)


def markdown_with(text):
    """The lesson's one markdown cell that contains `text`."""
    hits = [c.source for c in nbformat.read(LESSON, as_version=4).cells if c.cell_type == "markdown" and text in c.source]
    assert len(hits) == 1, text
    return hits[0]


def mean_curve(groups, metric):
    return scaling_report.curve(groups, metric)[1].mean(axis=1)


def family_floor(family):
    compute, loss = scaling_report.curve(family, lambda r: r["val_loss"])
    return stats.fit_with_floor(compute, loss.mean(axis=1))[0].floor


def test_the_prediction_and_the_floor(results, groups, fit):
    compute, loss = scaling_report.curve(groups, lambda r: r["val_loss"])
    mean = loss.mean(axis=1)
    small = stats.fit_power_law(compute[:-1], mean[:-1])
    predicted, actual = float(small(compute[-1])), mean[-1]
    markdown_with("about a third of the gain")
    assert 0.2 < (mean[-2] - predicted) / (mean[-2] - actual) < 0.45  # "about a third"
    assert small.floor > actual and abs(predicted - actual) / actual < 0.03  # "below that floor"; "under 3%"
    assert 0.35 < mean[0] - mean[-1] < 0.45  # "spans only about 0.4 nats"
    law = fit[2]
    assert 0 < law.floor < small.floor  # "the floor drops"
    assert compute[-1] / compute[0] < 100 and "less than two orders of\nmagnitude" in markdown_with("The bootstrap interval")
    half = scaling_report.size_family(results, results["config"]["family_fraction"])
    floors = [family_floor(family) for family in (half, groups)]
    assert floors[1] < floors[0] and "Doubling the data lowered the fitted floor" in markdown_with("So $E$ here")


def test_the_shapes_the_guess_and_big_bench(results, groups):
    shapes = scaling_report.task_shapes(results)
    spatial = mean_curve(groups, scaling_report.task_metric("spatial", "exact_match"))
    assert shapes["spatial"]["exact_match"] == "smooth" and 0.05 < spatial[-1] - spatial[0] < 0.15 and spatial[-1] < 0.5
    markdown_with("Spatial is called\nsmooth")
    largest = {t: mean_curve(groups, scaling_report.task_metric(t, "exact_match"))[-1] for t in shapes}
    hardest = sorted(largest, key=largest.get)[:4]
    assert set(hardest) == {"arithmetic", "facts_tail", "translation", "spatial"}  # "named the four hardest"
    assert largest["facts_tail"] > 0.5 and spatial[-1] - spatial[0] < 0.15  # "most of the time"; "stays close"
    guess_cell = next(c for c in nbformat.read(LESSON, as_version=4).cells if c.source.startswith("my_guess ="))
    assert guess_cell.metadata["tags"] == ["guess"]
    assert guess_cell.source.startswith("my_guess = []")  # the learner writes the guess; the lesson does not
    assert 'our_guess = ["arithmetic", "facts_tail", "translation", "spatial"]' in guess_cell.source
    out = output_of(LESSON, "largest = {task:")
    ordered = sorted(hardest, key=largest.get)
    assert guess.compare_set([], ordered, "the four hardest tasks") in out  # the placeholder, as committed
    assert f"ours: the four hardest tasks: measured {', '.join(ordered)}; you named 4 of 4\n" in out
    counts = {s: sum(v["exact_match"] == s for v in shapes.values()) for s in scaling_report.SHAPES}
    assert counts["inverse"] == counts["not correlated"] == 0 and sum(scaling_report.BIG_BENCH_SHAPES.values()) == 99
    markdown_with("none of our tasks is *inverse* or *not correlated*")


def test_tail_knowledge_and_first_order_heuristics(groups):
    edges = [0, 50, 100, 300, np.inf]  # the lesson's
    seen = np.array(groups[0][0]["facts"]["seen"])
    bins = np.digitize(seen, edges) - 1
    known = np.array([[np.mean([r["facts"]["known"] for r in g], axis=0)[bins == b].mean() for b in range(4)] for g in groups])
    assert [(bins == b).sum() for b in (0, 3)] == [56, 10]
    assert seen.min() < 20 and "the rarest seen under 20 times" in markdown_with("Our guess, from reading")
    assert len(toyworld.TRANSLATIONS) * len(toyworld.LANGUAGES) == 108 and "lexicon of 108" in markdown_with("Our guess, from reading")
    assert np.all(known[1:, 3] > 0.5) and known[0, 3] < 0.5  # "every model but the smallest knows most of the ten"
    assert f"({known[-1, 0]:.2f})" in markdown_with("Read the table by columns") and known[-1, 0] > 0.5
    assert f"({known[3, 0]:.2f})" in markdown_with("Read the table by columns") and known[3, 0] < 0.1
    reach = [(row >= 0.5).sum() for row in known]
    assert reach == sorted(reach) and reach[-1] == 4  # each step up reaches further into the tail
    kl = {q: mean_curve(groups, lambda r, q=q: r["kl"][q]["all"]) for q in ("unigram", "bigram")}
    assert np.all(np.diff(kl["bigram"]) > 0) and np.all(kl["unigram"] > 2 * kl["bigram"])
    buckets = [b for b in groups[0][0]["kl"]["bigram"] if b != "all"]
    last = {b: mean_curve(groups, lambda r, b=b: r["kl"]["bigram"][b])[-1] for b in buckets}
    top = sorted(last, key=last.get, reverse=True)[:3]
    assert set(top) <= {"lists", "facts_head", "facts_tail", "translation"}
    assert min((b for b in buckets if b != "context"), key=last.get) == "arithmetic"
    markdown_with("It departs least on arithmetic's answers")


def test_the_decomposition_and_the_data_ablation(results, groups):
    shares = {b: np.mean([r["shares"][b] for r in groups[0]]) for b in groups[0][0]["shares"]}
    part = {b: [np.mean([r["shares"][b] * r["losses"][b] for r in g]) for g in groups] for b in shares}
    small, large = (sum(p[i] for p in part.values()) for i in (0, -1))
    gain = {b: p[0] - p[-1] for b, p in part.items()}
    assert round(100 * shares["context"]) == 89 and max(gain, key=gain.get) == "context" and gain["context"] > 0.5 * sum(gain.values())
    assert all(part[b][-1] / large < 0.0005 for b in ("grammar", "lists", "facts_head", "sentiment"))  # 0.0%
    assert all(part[b][-1] / large < 0.015 for b in ("facts_tail", "translation"))  # "nearly do"
    assert all(part[b][-1] / large > part[b][0] / small for b in ("arithmetic", "spatial"))
    markdown_with("what scale has not yet bought")
    text = markdown_with("Here every run sees its tokens once")
    out = output_of(LESSON, "L, d, h = config.sizes[config.ablation_size]")
    first, second = (float(x) for x in re.search(r"per doubling of data: (\S+), (\S+)", out).groups())
    assert f"about {-second:.2f} nats" in text and f"about {-first:.2f})" in text and first < second < 0
    by_size = [float(x) for x in re.search(r"by size: (.*)", out).group(1).split(", ")]
    assert all(d < 0 for d in by_size) and f"by {-by_size[-1]:.2f} (the largest) to {-by_size[0]:.2f} nats" in text
    em = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in out.splitlines()[-8:]}
    assert f"rare facts ({em['facts_tail'][1]:.2f} → {em['facts_tail'][2]:.2f})" in text
    assert f"translation ({em['translation'][1]:.2f} → {em['translation'][2]:.2f})" in text
    assert f"spatial rises far less ({em['spatial'][1]:.2f} → {em['spatial'][2]:.2f})" in text
    assert f"arithmetic stays near zero ({em['arithmetic'][1]:.2f} → {em['arithmetic'][2]:.2f})" in text
    gain = {t: em[t][2] - em[t][1] for t in ("facts_tail", "translation", "spatial", "arithmetic")}
    assert gain["spatial"] < gain["translation"] / 4 and gain["arithmetic"] < 0.05 and em["arithmetic"][2] < 0.05
    assert text.rstrip().endswith("each doubling\nless than the one before.")


def test_the_borderline_name_and_the_two_metrics(results, groups):
    """Section 3 calls facts_tail's name borderline (the emergent rule missed by less than its resolution);
    section 4 says how far the log-probability view turns each jump into a slope."""
    best, tol = scaling_report.METRICS["exact_match"]
    shapes = scaling_report.task_shapes(results)
    _, tail = scaling_report.curve(groups, scaling_report.task_metric("facts_tail", "exact_match"))
    mean = tail.mean(axis=1)
    half = len(mean) // 2
    miss = np.abs(mean[:half] - mean[0]).max() - tol  # how far the smaller half moved past the rule's tolerance
    assert shapes["facts_tail"]["exact_match"] == "smooth" and shapes["translation"]["exact_match"] == "emergent"
    assert 0 < miss < tol / 10 and mean[-1] - mean[0] > 3 * tol  # emergent but for the smaller half's 0.003
    text = " ".join(markdown_with("One name is decided by a hair").split())
    assert f"facts_tail ({mean[0]:.2f} → {mean[-1]:.2f}) is called smooth, not emergent" in text
    assert f"its third size answers {mean[half - 1]:.3f} of the rare facts, {miss:.3f} more than the {tol:.2f}" in text
    assert f"that size's three seeds ({tail[half - 1].min():.2f} to {tail[half - 1].max():.2f})" in text
    assert tail.shape[1] == 3 and tail[half - 1].max() - tail[half - 1].min() > 10 * miss  # "well inside the spread"
    assert "borderline" in markdown_with("Read the table by columns") and "rises late" in text
    compute, _ = scaling_report.curve(groups, lambda r: r["val_loss"])
    decades = np.log10(compute)
    logp = {t: mean_curve(groups, scaling_report.task_metric(t, "answer_logprob"))
            for t in ("translation", "arithmetic")}
    exact = {t: mean_curve(groups, scaling_report.task_metric(t, "exact_match")) for t in ("translation", "arithmetic")}
    assert all(np.all(np.diff(lp) > 0) for lp in logp.values())  # "rises at every size"
    assert exact["arithmetic"].max() < 0.05 and f"({exact['arithmetic'][0]:.2f} → {exact['arithmetic'][-1]:.2f})" in \
        " ".join(markdown_with("Under log-probability the same models").split())
    early = (logp["translation"][2] - logp["translation"][0]) / (decades[2] - decades[0])
    late = (logp["translation"][-1] - logp["translation"][2]) / (decades[-1] - decades[2])
    section4 = " ".join(markdown_with("Under log-probability the same models").split())
    assert f"about {early:.1f} nats per tenfold" in section4 and f"to about {late:.1f} from the third" in section4
    assert late > 2 * early and exact["translation"][2] < tol < 0.5 < exact["translation"][-1]  # speeds up, takes off
    out = output_of(LESSON, "emergent = [t for t")
    for task, lp in logp.items():
        assert f"{task:<12} mean log p(answer) by size, smallest first: " + ", ".join(f"{v:.2f}" for v in lp) in out
    lp, em = logp["translation"], exact["translation"]
    text = " ".join(markdown_with("**Question.** Translation's exact match stays near zero").split())
    assert em[:3].max() < tol and np.exp(lp[2]) < 0.01  # "near zero"; "under 1%"
    assert f"rose from {lp[0]:.2f} to {lp[2]:.2f} nats" in text
    assert f"grew from {np.exp(lp[0]):.3f} to {np.exp(lp[2]):.3f}, {np.exp(lp[2] - lp[0]):.1f} times" in text
    assert f"the largest model, at {lp[-1]:.2f} nats (a typical probability of {np.exp(lp[-1]):.2f}), answers " \
           f"{em[-1]:.2f} of translations right" in text


def test_the_first_screen_states_the_claim_and_the_verdict_of_the_results(results, groups, fit):
    """The opening's claim and its short verdict, then the verdict in numbers after the figure, number by number
    against the sweep and the outputs of sections 2-4 (tests/test_isoflop.py checks the iso-FLOP part)."""
    screen = first_screen(LESSON)
    claim, verdict = screen["claim"], screen["measured"]
    emergent = scaling_report.BIG_BENCH_SHAPES["emergent"]
    assert sentences(claim) <= 2 and f"counted {emergent}% of BIG-Bench's tasks as emergent" in claim and emergent == 33
    compute, loss, law, (low, high) = fit
    mean = loss.mean(axis=1)
    assert sentences(verdict) <= 3 and len(re.findall(r"\d+(?:\.\d+)?", verdict)) <= 3  # 39, 0.52, 0.50
    assert f"Six model sizes trained on the same toy text, over a factor of {compute[-1] / compute[0]:.0f} in compute" \
        in verdict and len(compute) == 6
    assert np.all(np.diff(mean) < 0) and "each larger one has a lower loss" in verdict
    half = scaling_report.size_family(results, results["config"]["family_fraction"])
    assert family_floor(groups) < family_floor(half) and law.floor > 0  # a floor, lower with twice the data
    assert "along a power law that levels off toward a floor, which more data lowers" in verdict
    best, tol = scaling_report.METRICS["exact_match"]
    translation = mean_curve(groups, scaling_report.task_metric("translation", "exact_match"))
    assert translation[:3].max() < tol and translation[-1] > 0.5  # "almost none of it ... the largest most of it"
    assert "the smaller half of the sizes answer almost none of it right, the largest most of it" in verdict
    out = output_of(LESSON, "actual = mean_loss[-1]")
    assert f"exponent alpha = {law.alpha:.3f}, 95% bootstrap interval over seeds [{low:.3f}, {high:.3f}]" in out
    assert f"compute spans a factor of {compute[-1] / compute[0]:.0f}:" in out
    text = " ".join(markdown_with("**The verdict in numbers.**").split())
    assert f"Over six sizes, a factor of {compute[-1] / compute[0]:.0f} in compute" in text
    assert f"falls at every step ({mean[0]:.3f} to {mean[-1]:.3f} nats)" in text
    assert f"the exponent {law.alpha:.3f}, with a 95% bootstrap interval over seeds of [{low:.3f}, {high:.3f}] (§2)" in text
    assert (f"(result: the loss's exponent {law.alpha:.3f}, 95% interval [{low:.3f}, {high:.3f}]; translation emerges "
            "under exact match, not under log-probability)") in course_map_row("03_scaling_curves")
    small = stats.fit_power_law(compute[:-1], mean[:-1])
    predicted = float(small(compute[-1]))
    assert f"predicted {predicted:.4f}, measured {mean[-1]:.4f}" in out and small.floor > mean[-1]  # below its floor
    assert f"the law predicted {predicted:.4f} for the largest, which measured {mean[-1]:.4f}, below that law's floor" in text
    by_metric = scaling_report.task_shapes(results)
    shapes = {task: s["exact_match"] for task, s in by_metric.items()}
    named = {shape: sorted(t for t, s in shapes.items() if s == shape) for shape in set(shapes.values())}
    assert named == {"smooth": ["facts_head", "facts_tail", "lists", "sentiment", "spatial"], "saturated": ["grammar"],
                     "flat": ["arithmetic"], "emergent": ["translation"]}
    assert ("five curves smooth, one saturated (grammar), one flat (arithmetic) and one emergent (translation)") in text
    assert by_metric["translation"]["answer_logprob"] == "smooth"  # the course map's "not under log-probability"
    logp = mean_curve(groups, scaling_report.task_metric("translation", "answer_logprob"))
    assert np.all(np.diff(logp) > 0) and "whose log-probability rises at every size (§4)" in text
    assert "[exercise 06](../exercises/06_power_law_fit.ipynb)" in markdown_with("## 2. Loss against compute")

def cell_tagged(tag):
    cells = [c for c in nbformat.read(LESSON, as_version=4).cells if tag in c.metadata.get("tags", [])]
    assert cells, tag
    return cells


def test_the_guesses_are_compared_with_the_measurement(results, groups):
    """Both guess cells: as committed (the placeholder) the comparison says what to write; a filled-in guess is
    measured against the committed sweep."""
    loss_cell, tasks_cell = cell_tagged("guess")
    assert loss_cell.source.startswith("my_loss_guess = None  # your guess: the largest model's loss in nats")
    assert tasks_cell.source.startswith("my_guess = []")
    measured = mean_curve(groups, lambda r: r["val_loss"])[-1]
    what = "the largest model's loss"
    out = output_of(LESSON, "compute_all, loss_all, law, (low, high) = scaling_report.loss_fit(results)")
    assert out.strip() == guess.compare_number(None, measured, what, unit=" nats")
    assert f"(measured: {measured:.4g} nats)" in out
    filled = guess.compare_number(0.9, measured, what, unit=" nats")
    assert filled.startswith(f"{what}: you guessed 0.9 nats, measured {measured:.4g} nats, off by +0.1")
    largest = {t: mean_curve(groups, scaling_report.task_metric(t, "exact_match"))[-1] for t in toyworld.TASKS}
    hardest = sorted(largest, key=largest.get)[:4]
    assert guess.compare_set([], hardest, "the four hardest tasks").startswith("no guess yet for the four hardest")
    line = guess.compare_set(["arithmetic", "grammar"], hardest, "the four hardest tasks")
    assert "you named 1 of 4" in line and "not among them: grammar" in line
    setup = output_of(LESSON, "from collections import Counter")
    params = [g[0]["params"] for g in groups]
    assert f"loss {mean_curve(groups, lambda r: r['val_loss'])[0]:.3f} nats per token" in setup
    assert f"({params[-1]:,} weights, {params[-1] / params[0]:.0f} times as many;" in setup and "loss ?" in setup
    assert "code_version" not in "".join(c.source for c in nbformat.read(LESSON, as_version=4).cells)


def live_flops(results, n_layer, d_model):
    """The training compute of a size the live cell trains, counted as train_run counts it (the sweep's tokens)."""
    config = results["config"]
    vocab = WordTokenizer(toyworld.vocabulary(toyworld.ToyworldConfig(**config["world"]))).vocab_size
    block, batch = config["block_size"], config["batch_size"]
    model = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=1, d_model=d_model))
    tokens = config["tokens"] // (batch * block) * batch * block  # whole steps, as train_run counts them
    return stats.training_flops(model.num_params(non_embedding=True), n_layer, d_model, block, vocab, tokens)


def test_the_live_run_lands_within_the_committed_seed_band(results, groups, fit):
    """The live cell trains three sizes with the sweep's own train_run and a seed the sweep did not train: its
    committed output (nbval runs the cell again) puts each size the sweep has inside its seeds' band, mean +- 3
    standard deviations, and compares the size it lacks with the law through the six sizes."""
    (cell,) = cell_tagged("live")
    assert "scaling.train_run(config, scaling.Run(*size, seed), corpus)" in cell.source  # the sweep's own function
    assert "one_blas_thread()" in cell.source  # as runner.measured runs every committed point
    seed = int(re.search(r"^seed = (\d+)", cell.source, re.M).group(1))
    assert seed not in results["config"]["seeds"]
    committed = {(g[0]["n_layer"], g[0]["d_model"]): [r["val_loss"] for r in g] for g in groups}
    compute = {(g[0]["n_layer"], g[0]["d_model"]): g[0]["flops"] for g in groups}
    law = fit[2]
    lines = "".join(o.get("text", "") for o in cell.outputs).strip().splitlines()
    assert len(lines) == 3, lines
    new = []
    for line in lines:
        n_layer, d_model, loss = re.match(rf"(\d+) x (\d+) wide, seed {seed}: loss (\d\.\d+) in", line).groups()
        size, loss = (int(n_layer), int(d_model)), float(loss)
        if size in committed:
            seeds = committed[size]
            centre, half_width = np.mean(seeds), 3 * np.std(seeds, ddof=1)
            assert f"committed seeds {', '.join(f'{s:.4f}' for s in seeds)}, band [{centre - half_width:.4f}, " \
                   f"{centre + half_width:.4f}]: inside" in line and abs(loss - centre) <= half_width
        else:
            new.append(size)
            flops = live_flops(results, *size)
            assert f"at its {flops:.2e} FLOPs" in line
            assert f"the law says {float(law(flops)):.4f}" in line and f"off by {loss - float(law(flops)):+.4f}" in line
            below, above = max(c for c in compute.values() if c < flops), min(c for c in compute.values() if c > flops)
            assert below < flops < above  # between two measured sizes: the law interpolates
    assert new == [(1, 20)] and sum(size in committed for size in [(1, 16), (1, 24)]) == 2


def test_the_worked_answers(results, groups, fit):
    """The questions at the end of sections 2, 5, 6 and 7: each worked answer's numbers from the sweep."""
    compute, loss, law, _ = fit
    mean = loss.mean(axis=1)
    text = " ".join(markdown_with("**Question.** The law through all six sizes").split())
    ten = 10 * compute[-1]
    assert f"$C = {ten / 1e13:.2f} \\times 10^{{13}}$" in text
    assert f"$L(C) = {law.floor:.3f} + {law.a / 1e8:.2f} \\times 10^{{8}}\\, C^{{-{law.alpha:.3f}}}$" in text
    assert f"the power term is {law(ten) - law.floor:.4f}, so $L \\approx {law(ten):.3f}$ nats" in text
    assert f"only {mean[-1] - law(ten):.3f} below the largest model's {mean[-1]:.3f}" in text
    half = scaling_report.size_family(results, results["config"]["family_fraction"])
    assert f"the floor {law.floor:.3f}" in text and f"(it moved to {family_floor(half):.3f} on half of them)" in text
    edges = [0, 50, 100, 300, np.inf]  # section 5's
    seen = np.array(groups[0][0]["facts"]["seen"])
    bins = np.digitize(seen, edges) - 1
    known = np.array([np.mean([r["facts"]["known"] for r in g], axis=0)[bins == 1].mean() for g in groups])
    first = int(np.argmax(known > 0.5))
    params = [g[0]["params"] for g in groups]
    text = " ".join(markdown_with("**Question.** Which is the smallest model that knows").split())
    assert (groups[first][0]["n_layer"], groups[first][0]["d_model"]) == (2, 48)
    assert f"The 2 x 48 model ({known[first]:.2f} of them), with {params[first]:,} weights against the 2 x 32 " \
           f"model's {params[first - 1]:,}, {params[first] / params[first - 1]:.1f} times as many" in text
    assert f"the 2 x 32 model knew {known[first - 1]:.2f} of them" in text
    buckets = list(groups[0][0]["shares"])
    part = np.array([[np.mean([r["shares"][b] * r["losses"][b] for r in g]) for g in groups] for b in buckets])
    arith = buckets.index("arithmetic")
    share = np.mean([r["shares"]["arithmetic"] for r in groups[0]])
    of_small, of_large = part[arith, 0] / part[:, 0].sum(), part[arith, -1] / part[:, -1].sum()
    of_gain = (part[arith, 0] - part[arith, -1]) / (part[:, 0] - part[:, -1]).sum()
    text = " ".join(markdown_with("**Question.** Arithmetic's answers are").split())
    assert f"are {share:.1%} of the tokens" in text and of_gain < of_small < of_large
    assert f"Larger: {of_small:.1%} of the smallest model's loss, {of_large:.1%} of the largest's" in text
    assert f"only {of_gain:.1%} of the improvement, less than their {of_small:.1%} share" in text
    out = output_of(LESSON, "L, d, h = config.sizes[config.ablation_size]")
    a, b = (float(x) for x in re.search(r"per doubling of data: (\S+), (\S+)", out).groups())
    abl = float(re.search(r"1\.00 of the data \(.*\): loss (\S+)", out).group(1))
    text = " ".join(markdown_with("**Question.** The 3 x 64 model's two doublings").split())
    assert f"by {-a:.2f} and then {-b:.2f} nats" in text
    assert f"gained {b / a:.2f} of the first ({-b:.4f} / {-a:.4f})" in text
    assert f"about {b / a:.2f} × {-b:.2f} ≈ {-b * b / a:.2f} nats" in text and b / a < 1  # each doubling less
    assert f"from {abl:.3f} to about {abl + b * b / a:.3f}" in text
