"""The command line: the demo works, and every mistake a user can make is one clear line."""
import os
import subprocess
import sys

import pytest

from minilm import MinilmError, backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def minilm(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "minilm", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


def assert_one_line_error(result):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "error" in lines[0]
    return lines[0]


def test_demo_trains_completes_prompts_and_saves(tmp_path):
    result = minilm("--demo-steps", "150", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "completions" in result.stdout and "the capital of france is" in result.stdout
    assert os.path.exists(tmp_path / "model.npz") and os.path.exists(tmp_path / "loss.png")
    sample = minilm("sample", str(tmp_path / "model.npz"), "--prompt", "the capital of", "--temperature", "0",
                    "--max-new-tokens", "4")
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("the capital of ")


def test_train_on_a_text_file_then_resume(tmp_path):
    text = tmp_path / "poem.txt"
    text.write_text("all that glisters is not gold; often have you heard that told.\n" * 40)
    out = str(tmp_path / "run")
    args = ("train", "--text", str(text), "--out", out, "--block-size", "16", "--d-model", "16",
            "--n-layer", "1", "--n-head", "2", "--batch-size", "4")
    first = minilm(*args, "--steps", "20")
    assert first.returncode == 0, first.stderr
    again = minilm(*args, "--steps", "30", "--resume")  # a finished run extended to 30 steps
    assert again.returncode == 0 and "trained 30 steps" in again.stdout


@pytest.mark.parametrize("args, fragment", [
    (("--bogus",), "unrecognized arguments: --bogus"),
    (("train",), "--text"),
    (("train", "--text", "no/such/file.txt"), "not found"),
    (("sample", "no/such.npz", "--prompt", "hi"), "not found"),
    (("train", "--text", "README.md", "--n-head", "3", "--d-model", "16"), "divisible"),
])
def test_bad_input_is_one_line(args, fragment):
    assert fragment in assert_one_line_error(minilm(*args))


def test_empty_text_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert "is empty" in assert_one_line_error(minilm("train", "--text", str(empty)))


def test_corrupt_checkpoint_from_the_cli(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert "truncated or corrupt" in assert_one_line_error(minilm("sample", str(bad), "--prompt", "x"))


@pytest.mark.skipif(backend._cupy is not None, reason="CuPy is installed here")
def test_device_cuda_without_cupy_is_one_clear_line():
    line = assert_one_line_error(minilm("--device", "cuda"))
    assert "needs CuPy" in line


def test_every_subcommand_has_help():
    for args in ((), ("train",), ("sample",)):
        result = minilm(*args, "--help")
        assert result.returncode == 0 and "usage" in result.stdout


def test_ctrl_c_saves_and_exits_130(tmp_path):
    import signal
    import time

    from minilm.checkpoint import read_checkpoint

    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    out = str(tmp_path / "run")
    args = ["train", "--text", str(text), "--out", out, "--steps", "100000", "--block-size", "16",
            "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--batch-size", "4"]
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    proc = subprocess.Popen([sys.executable, "-m", "minilm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stdout.readline().startswith("model:")  # printed just before the loop starts
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr  # saved, but cut short: a script can tell
    assert "interrupted" in stdout and "Traceback" not in stderr
    step = read_checkpoint(os.path.join(out, "model.npz"))[1]["step"]
    assert 0 < step < 100000


@pytest.mark.parametrize("args, flag, fragment", [
    (("train", "--text", "README.md", "--steps", "0"), "--steps", "a whole number of 1 or more"),
    (("train", "--text", "README.md", "--steps", "-5"), "--steps", "a whole number of 1 or more"),
    (("train", "--text", "README.md", "--batch-size", "0"), "--batch-size", "a whole number of 1 or more"),
    (("train", "--text", "README.md", "--lr", "-1"), "--lr", "a number above 0"),
    (("train", "--text", "README.md", "--lr", "inf"), "--lr", "a number above 0"),
    (("sample", "x.npz", "--prompt", "hi", "--temperature", "nan"), "--temperature", "a number of 0 or more"),
    (("sample", "x.npz", "--prompt", "hi", "--max-new-tokens", "-1"), "--max-new-tokens", "a whole number of 1 or more"),
    (("sample", "x.npz", "--prompt", "hi", "--top-k", "0"), "--top-k", "a whole number of 1 or more"),
    (("--demo-steps", "1.5"), "--demo-steps", "a whole number of 1 or more"),
    (("glib", "--jobs", "0"), "--jobs", "a whole number of 1 or more"),
    (("scaling", "--jobs", "two"), "--jobs", "a whole number of 1 or more"),
    (("archs", "--jobs", "1.5"), "--jobs", "a whole number of 1 or more"),
    (("grade", "exercises", "--cell-timeout", "0"), "--cell-timeout", "a whole number of 1 or more"),
])
def test_every_number_is_checked_where_it_is_parsed(args, flag, fragment, capsys):
    """One line naming the flag and what to give instead, exit 2, before anything runs."""
    from minilm.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(list(args))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1, err
    assert f"argument {flag}: give {fragment}" in err and "(see --help)" in err


def test_help_shows_percent_signs_once():
    assert "90% train, 10% validation" in minilm("train", "--help").stdout



def test_version_and_the_usage_line_name_the_way_minilm_was_called():
    import minilm as package
    from minilm.__main__ import program_name

    result = minilm("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"minilm {package.__version__}"
    assert minilm("--help").stdout.startswith("usage: python -m minilm ")
    assert minilm("train", "--help").stdout.startswith("usage: python -m minilm train ")
    assert program_name("/home/me/.venv/bin/minilm") == "minilm" and program_name("/x/minilm/__main__.py") != "minilm"
    as_script = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = '/venv/bin/minilm'; "
                                "from minilm.__main__ import main; main(['sample', '--help'])"],
                               capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert as_script.stdout.startswith("usage: minilm sample "), as_script.stderr


def test_the_version_is_written_once():
    """pyproject.toml reads the version from minilm/__init__.py, so a wheel and the checkout agree."""
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert 'dynamic = ["version"]' in text and 'version = { attr = "minilm.__version__" }' in text
    assert "\nversion =" not in text.split("[tool.setuptools.dynamic]")[0]


def test_sample_prints_its_fresh_seed_and_the_seed_repeats_the_text(tmp_path):
    import numpy as np

    from minilm import GPT, GPTConfig
    from minilm.tokenizer import ByteTokenizer
    from minilm.train import TrainConfig, Trainer

    tokenizer = ByteTokenizer()
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, d_model=16), seed=0)
    tokens = np.array(tokenizer.encode("all that glisters is not gold. " * 20), dtype=np.int32)
    Trainer(model, tokens, config=TrainConfig(steps=1, batch_size=2, eval_every=0), checkpoint_path=str(tmp_path / "m.npz"),
            tokenizer=tokenizer).run(progress=False)
    args = ("sample", str(tmp_path / "m.npz"), "--prompt", "all that", "--max-new-tokens", "12", "--temperature", "1.5")
    first, second = minilm(*args), minilm(*args)
    seeds = [int(run.stderr.split("[seed ")[1].split(":")[0]) for run in (first, second)]
    assert seeds[0] != seeds[1] and f"--seed {seeds[0]} gives this text again" in first.stderr
    again = minilm(*args, "--seed", str(seeds[0]))
    assert again.returncode == 0 and again.stdout == first.stdout and f"[seed {seeds[0]}:" in again.stderr
    greedy = minilm(*args[:-2], "--temperature", "0")
    assert greedy.returncode == 0 and "seed" not in greedy.stderr


# --------------------------------------------------------------------------------------------------
# Nothing lost, one line (docs/refusals.md): every refusal is one line and a non-zero exit, and a file that
# existed is byte-identical afterwards

def refused(capsys, *args, before_the_work=True):
    """main(args) in this process refuses: exit 1, one line on stderr, and (before_the_work) nothing on stdout:
    nothing was loaded, trained or graded. -> the line"""
    from minilm.__main__ import main

    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1 and err.startswith("minilm: error: "), err
    assert out == "" or not before_the_work, out
    return err.strip()


def last_line_alone(err):
    """An error printed after a progress bar: on a line of its own (the bar's line ended), and no traceback or
    NumPy warning before it. -> the line"""
    lines = err.split("\n")
    assert lines[-1] == "" and lines[-2].startswith("minilm: error: "), err
    assert "Traceback" not in err and "RuntimeWarning" not in err, err
    return lines[-2]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A word-level GPT checkpoint (base.npz), 30 prompt/response pairs (pairs.jsonl) in its vocabulary, and 30
    preference pairs of the same prompts (prefs.jsonl)."""
    import json

    from minilm import GPT, GPTConfig
    from minilm.checkpoint import save_checkpoint
    from minilm.tokenizer import WordTokenizer

    pairs = [(f"repeat after me : w{i} w{i + 1}", f"w{i} w{i + 1}") for i in range(30)]
    tokenizer = WordTokenizer.build([p + " " + r for p, r in pairs])
    gpt = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, d_model=16))
    save_checkpoint(str(tmp_path / "base.npz"), gpt.params, {**gpt.checkpoint_meta(), "tokenizer": tokenizer.to_json()})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs))
    (tmp_path / "prefs.jsonl").write_text("".join(  # preference pairs: the words in order over the words swapped
        json.dumps({"prompt": p, "chosen": r, "rejected": " ".join(r.split()[::-1])}) + "\n" for p, r in pairs))
    monkeypatch.chdir(tmp_path)  # the commands below name their files as a user would, relative to here
    return tmp_path


def finetune_args(*more):
    return ("finetune", "base.npz", "--data", "pairs.jsonl", "--steps", "2", "--batch-size", "4", *more)


def text_file(folder):
    (folder / "poem.txt").write_text("all that glisters is not gold; often have you heard that told.\n" * 40)
    return "poem.txt"


TINY_TRAIN = ("--block-size", "16", "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--batch-size", "4")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (root may write anywhere else)")
def test_an_output_that_cannot_be_written_is_refused_before_the_work(tiny, capsys):
    (tiny / "a_file").write_text("mine")
    (tiny / "a_folder").mkdir()
    assert "cannot write --out /proc/x.npz" in refused(capsys, *finetune_args("--out", "/proc/x.npz"))
    assert "is a file, not a folder" in refused(capsys, *finetune_args("--out", "a_file/x.npz"))
    assert "--out a_folder is a folder" in refused(capsys, *finetune_args("--out", "a_folder"))
    assert "--out a_file is a file" in refused(capsys, "train", "--text", text_file(tiny), "--out", "a_file")
    assert "--csv a_folder is a folder" in refused(capsys, "grade", "a_folder", "--csv", "a_folder")
    assert "cannot write the course to /proc/course" in refused(capsys, "course", "/proc/course")
    assert "cannot write --out /proc/r.json" in refused(capsys, "glib", "--out", "/proc/r.json")
    line = refused(capsys, *finetune_args("--data", "a_folder", "--out", "o.npz"))
    assert "a_folder is a folder: give a JSONL file" in line
    assert (tiny / "a_file").read_text() == "mine" and not os.path.exists("o.npz")


def test_a_file_that_an_output_would_destroy_is_refused(tiny, capsys):
    """The issue's data-loss cases: finetune onto its own base (which then named itself as its base) or its data,
    an existing --out without --resume or --overwrite, grade --csv onto a file that is not its CSV."""
    base, data = (tiny / "base.npz").read_bytes(), (tiny / "pairs.jsonl").read_bytes()
    assert "is also an input" in refused(capsys, *finetune_args("--lora-rank", "4", "--out", "base.npz"))
    assert "is also an input" in refused(capsys, *finetune_args("--out", "./pairs.jsonl"))
    (tiny / "precious.npz").write_bytes(base)
    line = refused(capsys, *finetune_args("--out", "precious.npz"))
    assert "precious.npz exists: give --resume to continue that run, --overwrite to replace it" in line
    line = refused(capsys, "grade", "pairs.jsonl", "--csv", "precious.npz")
    assert "not a class CSV that grade wrote" in line
    os.makedirs("run")
    (tiny / "run" / "model.npz").write_bytes(base)
    assert "run/model.npz exists" in refused(capsys, "train", "--text", text_file(tiny), "--out", "run", *TINY_TRAIN)
    assert "run/model.npz exists: give --overwrite" in refused(capsys, "--out", "run")  # the demo: not its own
    for path, before in (("base.npz", base), ("pairs.jsonl", data), ("precious.npz", base), ("run/model.npz", base)):
        assert (tiny / path).read_bytes() == before, path


def test_a_class_csv_that_grade_wrote_is_graded_again(tiny, capsys):
    """grade --csv replaces its own CSV (grading a class again): the check lets it through to the grading."""
    from minilm.__main__ import GRADER_CSV

    (tiny / "class.csv").write_text(GRADER_CSV + ",feedback\n")
    (tiny / "class").mkdir()
    assert "no notebooks" in refused(capsys, "grade", "class", "--csv", "class.csv")  # the grader's own refusal


def test_a_run_that_diverges_keeps_the_checkpoint_it_found(tiny):
    """finetune --lr 1e30 --overwrite: the held-out loss becomes NaN, the run stops, and the checkpoint it would
    have replaced is untouched (it used to be replaced by one that samples only <pad>). Run as a user runs it, so
    that NumPy's warnings and the progress bar would show."""
    (tiny / "precious.npz").write_bytes((tiny / "base.npz").read_bytes())
    before = (tiny / "precious.npz").read_bytes()
    result = minilm(*finetune_args("--lr", "1e30", "--steps", "1", "--out", "precious.npz", "--overwrite"), cwd=tiny)
    line = last_line_alone(result.stderr)
    assert result.returncode == 1 and "became nan" in line and "precious.npz is as it was" in line
    assert (tiny / "precious.npz").read_bytes() == before
    result = minilm(*finetune_args("--lora-rank", "4", "--lora-alpha", "1e308", "--out", "new.npz"), cwd=tiny)
    line = last_line_alone(result.stderr)
    assert result.returncode == 1 and "--lora-alpha (now 1e+308" in line and not os.path.exists(tiny / "new.npz")


def test_data_whose_every_response_is_empty_is_refused(tiny, capsys):
    (tiny / "empty.jsonl").write_text('{"prompt": "say hi", "response": ""}\n{"prompt": "say yo", "response": " "}\n')
    line = refused(capsys, *finetune_args("--data", "empty.jsonl", "--out", "o.npz"))
    assert "every response in empty.jsonl is empty" in line and not os.path.exists("o.npz")


@pytest.mark.skipif(backend._cupy is not None, reason="CuPy is installed here")
def test_the_cuda_hint_names_the_distribution_even_with_a_checkpoint(tiny, capsys):
    line = refused(capsys, "sample", "base.npz", "--prompt", "hi", "--device", "cuda")
    assert "pip install 'minilm-course[cuda12]'" in line and "valid model" not in line


def test_weights_that_are_not_finite_are_never_saved(tmp_path):
    from minilm import GPT, GPTConfig
    from minilm.checkpoint import save_checkpoint

    gpt = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, d_model=4))
    gpt.params["h.0.mlp.w_fc"][0, 0] = float("inf")
    with pytest.raises(MinilmError, match="not writing .* 1 weights hold NaN or infinite values \\(h.0.mlp.w_fc"):
        save_checkpoint(str(tmp_path / "m.npz"), gpt.params, {})
    assert os.listdir(tmp_path) == []


def test_file_system_errors_and_memory_are_one_line(monkeypatch, capsys):
    """main() turns an OSError (a folder where a file should be, a full disk, no permission) or a MemoryError
    raised anywhere in a command into one line."""
    from minilm import __main__ as cli

    def fails(error):
        def run(args):
            raise error
        return run

    monkeypatch.setattr(cli, "run_merge", fails(PermissionError(13, "Permission denied", "out.npz")))
    assert refused(capsys, "merge", "a.npz", "--out", "b.npz") == "minilm: error: Permission denied: out.npz"
    monkeypatch.setattr(cli, "run_merge", fails(MemoryError()))
    assert "out of memory" in refused(capsys, "merge", "a.npz", "--out", "b.npz")


def test_sizes_that_cannot_fit_are_refused_with_the_estimate(tiny, capsys):
    line = refused(capsys, "train", "--text", text_file(tiny), "--out", "big", "--d-model", "1000000000")
    assert "needs about" in line and "EiB" in line and "this machine has" in line and "--d-model" in line
    assert not os.path.exists("big")


def test_a_lora_rank_larger_than_its_matrix_is_refused(tiny, capsys):
    line = refused(capsys, *finetune_args("--lora-rank", "100000", "--out", "o.npz"), before_the_work=False)
    assert "LoRA rank 100000 is larger than the matrix it adapts" in line and "rank of 16 or less" in line


def test_a_temperature_below_the_floor_is_greedy(tiny, capsys):
    from minilm.__main__ import main

    args = ("sample", "base.npz", "--prompt", "repeat after me : w1", "--max-new-tokens", "4")
    assert main([*args, "--temperature", "0"]) == 0
    greedy = capsys.readouterr()
    assert main([*args, "--temperature", "1e-320"]) == 0
    tiny_t = capsys.readouterr()
    assert tiny_t.out == greedy.out and "seed" not in tiny_t.err
    assert "below 0.001" in main_help(capsys, "sample") and "below 0.001" in main_help(capsys, "chat")


def test_a_first_chat_is_greedy_by_default():
    """chat's default is the model's most likely reply (a sampled first token of a near tie started a wrong
    answer to 'What is the capital of France?'); --help says why and what the model card samples with."""
    from minilm.__main__ import build_parser

    assert build_parser().parse_args(["chat"]).temperature == 0
    assert "SmolLM2's model card samples at 0.2" in " ".join(minilm("chat", "--help").stdout.split())


def main_help(capsys, command):
    from minilm.__main__ import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_unknown_words_are_warned_about_once_with_the_count(tiny, capsys):
    from minilm.__main__ import main

    assert main(["sample", "base.npz", "--prompt", "repeat after me : zz qq zz", "--temperature", "0",
                 "--max-new-tokens", "2"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "3 words in the prompt are not in the model's vocabulary (2 distinct" in err


def test_resume_refuses_what_conflicts_and_extends_with_more_steps(tiny, capsys):
    from minilm.__main__ import main
    from minilm.checkpoint import read_meta

    text = text_file(tiny)
    train = ("train", "--text", text, "--out", "run", *TINY_TRAIN)
    assert main([*train, "--steps", "4"]) == 0
    capsys.readouterr()
    finished = (tiny / "run" / "model.npz").read_bytes()
    assert "finished its 4 steps: give --steps N above 4" in refused(capsys, *train, "--resume")
    line = refused(capsys, *train, "--resume", "--steps", "8", "--d-model", "32")
    assert "--d-model 32 conflicts with the run in run/model.npz, which has --d-model 16" in line
    assert "--steps 3 is fewer than the 4" in refused(capsys, *train, "--resume", "--steps", "3")
    assert (tiny / "run" / "model.npz").read_bytes() == finished
    assert main([*train, "--resume", "--steps", "6"]) == 0 and "trained 6 steps" in capsys.readouterr().out
    assert read_meta("run/model.npz")["step"] == 6
    assert main(finetune_args("--lora-rank", "2", "--out", "ft.npz", "--keep-last")) == 0  # extended from its end
    capsys.readouterr()
    line = refused(capsys, *finetune_args("--lora-rank", "4", "--out", "ft.npz", "--resume", "--steps", "3"))
    assert "--lora-rank 4 conflicts with the run in ft.npz, which has --lora-rank 2" in line
    assert main(finetune_args("--out", "ft.npz", "--resume", "--steps", "3")) == 0
    assert "trained 3 steps" in capsys.readouterr().out and read_meta("ft.npz")["step"] == 3
    assert "--steps N above" in main_help(capsys, "finetune") and "cosine" in main_help(capsys, "train")


def test_resume_refuses_a_checkpoint_of_another_kind(tiny, capsys):
    """train --resume on a fine-tuning's checkpoint, or on a word-level one (the demo's), and finetune --resume on
    train's: one line each, the file untouched."""
    from minilm.__main__ import main

    assert main(finetune_args("--out", "ft.npz")) == 0
    capsys.readouterr()
    os.makedirs("tuned")
    os.makedirs("words")
    (tiny / "tuned" / "model.npz").write_bytes((tiny / "ft.npz").read_bytes())
    (tiny / "words" / "model.npz").write_bytes((tiny / "base.npz").read_bytes())
    train = ("train", "--text", text_file(tiny), "--resume", "--steps", "9", *TINY_TRAIN)
    assert "is a checkpoint of finetune, not of train" in refused(capsys, *train, "--out", "tuned")
    assert "holds a word-level model" in refused(capsys, *train, "--out", "words")
    assert main([*train[:-len(TINY_TRAIN) - 3], "--out", "run", "--steps", "2", *TINY_TRAIN]) == 0
    capsys.readouterr()
    assert "is a checkpoint of train, not of finetune" in refused(
        capsys, *finetune_args("--out", "run/model.npz", "--resume", "--steps", "5"))
    assert (tiny / "words" / "model.npz").read_bytes() == (tiny / "base.npz").read_bytes()


def test_sample_prints_no_eos_and_finetune_suggests_sample_for_a_plain_model(tiny, capsys):
    """A model whose every next token is <eos> (its final norm's output set to <eos>'s embedding, which the output
    layer shares) samples an empty continuation: the <eos> that ended it is not text."""
    from minilm.__main__ import main
    from minilm.checkpoint import read_checkpoint, save_checkpoint

    arrays, meta = read_checkpoint("base.npz")
    arrays["param/ln_f.w"][:] = 0
    arrays["param/ln_f.b"][:] = 10 * arrays["param/wte"][2]  # <eos> is id 2
    save_checkpoint("eos.npz", {name[6:]: a for name, a in arrays.items()}, meta)
    assert main(["sample", "eos.npz", "--prompt", "repeat after me", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == "repeat after me \n"
    assert main(finetune_args("--out", "ft.npz")) == 0
    assert "(try: python -m minilm sample ft.npz --prompt ...)" in capsys.readouterr().out


def test_the_refusals_are_documented_for_every_command_that_replaces_a_file():
    """docs/refusals.md names every command that takes --overwrite or --resume, and those flags."""
    import argparse

    from minilm.__main__ import build_parser

    text = open(os.path.join(ROOT, "docs", "refusals.md")).read()
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    replacing = [name for name, p in commands.items()
                 if any({"--overwrite", "--resume"} & set(a.option_strings) for a in p._actions)]
    assert sorted(replacing) == ["finetune", "merge", "reward", "train"]
    assert all(f"`{name}" in text for name in replacing) and "`--overwrite`" in text and "`--resume`" in text
    assert "refusals.md" in open(os.path.join(ROOT, "docs", "commands.md")).read()


def test_a_lora_checkpoint_moves_with_its_base_and_a_missing_base_is_named(tiny, capsys):
    """The base is stored relative to the LoRA checkpoint's folder: the two moved together still load; the
    checkpoint moved alone says that its base is missing (not 'checkpoint not found')."""
    import shutil

    from minilm.__main__ import main
    from minilm.checkpoint import read_meta

    assert main(finetune_args("--lora-rank", "2", "--out", "ft/lora.npz")) == 0
    capsys.readouterr()
    assert read_meta("ft/lora.npz")["lora"]["base"] == {"checkpoint": os.path.join("..", "base.npz")}
    shutil.copytree(tiny, tiny.parent / (tiny.name + "_moved"))
    moved = tiny.parent / (tiny.name + "_moved")
    sample = ("sample", str(moved / "ft" / "lora.npz"), "--prompt", "repeat after me", "--temperature", "0")
    assert main(list(sample)) == 0 and capsys.readouterr().out.startswith("repeat after me")
    os.remove(moved / "base.npz")
    line = refused(capsys, *sample)
    assert f"the base of the LoRA checkpoint {moved / 'ft' / 'lora.npz'} is not found: ../base.npz" in line


def test_finetune_length_follows_the_data_and_overfitting_is_said(tiny, capsys):
    """Without --steps, finetune makes EPOCHS passes over its training examples (27 here, in batches of 4); a
    held-out loss that rises from its best while the training loss falls is one line naming the best step."""
    from minilm.__main__ import main
    from minilm.finetune import EPOCHS, overfitting
    from minilm.train import History

    args = [a for a in finetune_args("--out", "ft.npz") if a not in ("--steps", "2")]
    assert main(args) == 0
    assert f"trained {-(-EPOCHS * 27 // 4)} steps" in capsys.readouterr().out
    falling = [3.0 - 0.1 * i for i in range(30)]
    rising = History(steps=list(range(1, 31)), losses=falling, val_steps=[10, 20, 30], val_losses=[1.0, 0.6, 0.9])
    assert "rose from 0.600 (step 20) to 0.900 while the training loss fell" in overfitting(rising)
    assert "--steps 20 would generalize better" in overfitting(rising)
    assert overfitting(History(steps=list(range(1, 31)), losses=falling, val_steps=[10, 20, 30],
                               val_losses=[1.0, 0.7, 0.6])) is None


def test_finetune_keeps_the_step_of_the_lowest_held_out_loss_unless_asked_for_the_last(tiny, capsys):
    """Two runs alike: --keep-last writes step 20; by default the checkpoint is the step whose held-out loss (in
    the last run's history) was lowest, and the summary says which step it kept."""
    import numpy as np

    from minilm.__main__ import main
    from minilm.checkpoint import read_meta

    args = finetune_args("--steps", "20", "--lr", "3e-2")
    assert main([*args, "--out", "last.npz", "--keep-last"]) == 0
    last = read_meta("last.npz")
    assert last["step"] == 20 and "kept" not in last and "kept step" not in capsys.readouterr().out
    assert main([*args, "--out", "best.npz"]) == 0
    history, best = last["history"], read_meta("best.npz")
    best_step = history["val_steps"][int(np.argmin(history["val_losses"]))]
    assert best["step"] == best_step
    if best_step < 20:
        assert best["kept"]["of"] == 20 and f"kept step {best_step} of 20" in capsys.readouterr().out


# ---- score and finetune --objective dpo (issue 43)

def scored(capsys, checkpoint):
    """score CHECKPOINT --data prefs.jsonl -> (each pair's margin, the preferred count on the last line)"""
    from minilm.__main__ import main

    assert main(["score", checkpoint, "--data", "prefs.jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    margins = [line.split(":")[1].split()[0] for line in lines if line.startswith("pair ")]  # signed: "+0.000"
    assert len(margins) == 30 and lines[-1].startswith("preferred: ") and lines[-1].endswith("/30")
    assert int(lines[-1].split()[1].split("/")[0]) == sum(m.startswith("+") for m in margins)
    return [float(m) for m in margins], int(lines[-1].split()[1].split("/")[0])


DPO_ARGS = ("--data", "prefs.jsonl", "--objective", "dpo", "--beta", "1", "--steps", "60", "--lr", "1e-2",
            "--batch-size", "8", "--keep-last")


@pytest.mark.parametrize("lora", [(), ("--lora-rank", "2")], ids=["full", "lora"])
def test_dpo_raises_the_preferred_count_that_score_reports_and_leaves_the_base(tiny, capsys, lora):
    """score's margins on the base, then after DPO on the same pairs: the count of pairs whose chosen response
    is the likelier rises (measured: 0/30 -> 18/30 in full, 0/30 -> 13/30 with LoRA),
    the base's file is unchanged, and --resume continues the run by DPO without being told."""
    import numpy as np

    from minilm.__main__ import main
    from minilm.checkpoint import read_meta

    base = (tiny / "base.npz").read_bytes()
    margins, preferred = scored(capsys, "base.npz")
    assert main(["finetune", "base.npz", *DPO_ARGS, *lora, "--out", "dpo.npz"]) == 0
    out = capsys.readouterr().out
    assert "by DPO (beta 1) against a frozen copy of base.npz" in out and "held out: DPO loss 0.693 -> " in out
    tuned, preferred_after = scored(capsys, "dpo.npz")
    assert preferred_after >= preferred + 10 and np.mean(tuned) > np.mean(margins)
    assert (tiny / "base.npz").read_bytes() == base
    assert read_meta("dpo.npz")["objective"] == {"name": "dpo", "beta": 1.0}
    assert main(["finetune", "base.npz", "--data", "prefs.jsonl", *lora, "--out", "dpo.npz", "--resume",
                 "--steps", "64"]) == 0
    assert "held out: DPO loss" in capsys.readouterr().out and read_meta("dpo.npz")["step"] == 64
    line = refused(capsys, "finetune", "base.npz", "--data", "prefs.jsonl", *lora, "--out", "dpo.npz", "--resume",
                   "--steps", "70", "--objective", "mle")
    assert "--objective mle conflicts with the run in dpo.npz, which has --objective dpo" in line


@pytest.mark.parametrize("args, fragment", [
    (("score", "base.npz", "--data", "missing.jsonl"), "no data file at missing.jsonl"),
    (("score", "base.npz", "--data", "bad.jsonl"), "bad.jsonl, line 2 is not JSON"),
    (("score", "base.npz", "--data", "same.jsonl"), "same.jsonl, line 1: chosen and rejected are the same response"),
    (("score", "--data", "prefs.jsonl"), "give either a checkpoint or --pretrained NAME"),
    (("finetune", "base.npz", "--data", "bad.jsonl", "--objective", "dpo"), "bad.jsonl, line 2 is not JSON"),
    (("finetune", "base.npz", "--data", "same.jsonl", "--objective", "dpo"), "chosen and rejected are the same"),
    (("finetune", "base.npz", "--data", "pairs.jsonl", "--objective", "dpo"),
     "pairs.jsonl, line 1 is a prompt/response example, not a preference pair"),
    (("finetune", "base.npz", "--data", "prefs.jsonl"), 'line 1 is a preference pair ("chosen", "rejected"), not a '
                                                        "prompt/response example: tune on pairs with finetune "
                                                        "--objective dpo"),
    (("finetune", "base.npz", "--data", "pairs.jsonl", "--beta", "0.5"), "--beta is DPO's: give --objective dpo"),
])
def test_bad_preference_input_is_one_line_and_touches_no_file(tiny, capsys, args, fragment):
    """Each refused with one line and exit 1, and an existing --out (replaceable: --overwrite) left as it was."""
    (tiny / "bad.jsonl").write_text('{"prompt": "a", "chosen": "w1", "rejected": "w2"}\n{"prompt": "a"\n')
    (tiny / "same.jsonl").write_text('{"prompt": "a", "chosen": "w1", "rejected": "w1"}\n')
    (tiny / "out.npz").write_bytes(b"kept")
    inputs = {name: (tiny / name).read_bytes() for name in ("base.npz", "bad.jsonl", "same.jsonl", "prefs.jsonl")}
    more = ("--out", "out.npz", "--overwrite", "--steps", "2") if args[0] == "finetune" else ()
    assert fragment in refused(capsys, *args, *more, before_the_work=False)
    assert (tiny / "out.npz").read_bytes() == b"kept"
    assert all((tiny / name).read_bytes() == data for name, data in inputs.items())


def test_a_beta_of_zero_is_refused_where_it_is_parsed(tiny, capsys):
    from minilm.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["finetune", "base.npz", "--data", "prefs.jsonl", "--objective", "dpo", "--beta", "0"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "argument --beta: give a number above 0" in err
    assert not os.path.exists(tiny / "runs")


def test_reward_trains_a_reward_model_that_score_reads_and_resume_continues(tiny, capsys):
    """reward on pairs whose rejected side is the prompt's first words: the held-out pairs ranked right rise from
    0% (every reward 0 at the start, a tie) to all three; the checkpoint loads as a RewardModel, score prints its
    reward margins (30/30 preferred), and --resume goes on while finetune --resume refuses it."""
    import json

    from minilm.__main__ import main
    from minilm.checkpoint import load_model, read_meta
    from minilm.reward import RewardModel

    lines = [json.loads(line) for line in open("pairs.jsonl")]
    (tiny / "rm.jsonl").write_text("".join(json.dumps({"prompt": x["prompt"], "chosen": x["response"],
                                                       "rejected": "repeat after me"}) + "\n" for x in lines))
    args = ["reward", "base.npz", "--data", "rm.jsonl", "--steps", "60", "--lr", "1e-2", "--keep-last"]
    assert main([*args, "--out", "rm.npz"]) == 0
    out = capsys.readouterr().out
    assert "the model and a reward head, by Bradley-Terry" in out and "ranked right" in out and "0% -> 100%" in out
    assert isinstance(load_model("rm.npz")[0], RewardModel)
    assert main(["score", "rm.npz", "--data", "rm.jsonl"]) == 0
    scored_lines = capsys.readouterr().out.splitlines()
    assert scored_lines[-1] == "preferred: 30/30" and "r(chosen) - r(rejected)" in scored_lines[-2]
    assert main([*args, "--out", "rm.npz", "--resume", "--steps", "64"]) == 0
    assert read_meta("rm.npz")["step"] == 64 and "trained 64 steps" in capsys.readouterr().out
    kept = (tiny / "rm.npz").read_bytes()
    line = refused(capsys, "finetune", "base.npz", "--data", "rm.jsonl", "--out", "rm.npz", "--resume", "--steps", "70")
    assert "rm.npz is a checkpoint of reward, not of finetune" in line and (tiny / "rm.npz").read_bytes() == kept
    assert "line 1 is a prompt/response example" in refused(capsys, "reward", "base.npz", "--data", "pairs.jsonl",
                                                            before_the_work=False)


# ---- finetune --objective pg: policy gradient on sampled answers, scored by a reward model (issue 43)

def rule_pairs(folder, n=90, seed=0):
    """Preference pairs that a rule labels: the chosen answer holds the word w1, the rejected one does not (three
    random words each, in the tiny model's vocabulary) -> the file's name."""
    import json

    import numpy as np

    rng, words = np.random.default_rng(seed), [f"w{i}" for i in range(2, 31)]
    lines = []
    for k in range(n):
        chosen, rejected = list(rng.choice(words, 3)), list(rng.choice(words, 3))
        chosen[rng.integers(3)] = "w1"
        lines.append(json.dumps({"prompt": f"repeat after me : w{k % 30} w{k % 30 + 1}", "chosen": " ".join(chosen),
                                 "rejected": " ".join(rejected)}))
    (folder / "rule.jsonl").write_text("\n".join(lines) + "\n")
    return "rule.jsonl"


def answers_with_w1(checkpoint, samples=60):
    """How many of `samples` answers the model samples to one prompt hold the rewarded word w1."""
    from minilm.checkpoint import load_for_text
    from minilm.generate import generate

    model, tokenizer = load_for_text(checkpoint)
    prompt = [tokenizer.eos_id] + tokenizer.encode("repeat after me : w7 w8")
    w1 = tokenizer.encode("w1")[0]
    return sum(w1 in generate(model, prompt, 16, 1.0, eos_id=tokenizer.eos_id, seed=s) for s in range(samples))


PG_ARGS = ("--objective", "pg", "--reward", "rm.npz", "--data", "pairs.jsonl", "--steps", "20", "--lr", "1e-2")


def test_policy_gradient_raises_the_reward_and_the_rule_it_learned_and_resumes(tiny, capsys):
    """A reward model learned from pairs a rule labels (the answer holds w1), then policy gradient on the prompts of
    pairs.jsonl: the mean reward of the sampled answers rises (measured: -2.2 -> 0.6 over 30 steps at lr 1e-2),
    so does the share of answers that hold w1 (15/100 -> 66/100), the KL to the start grows from 0, the base's file
    is unchanged, and --resume goes on as the run was set."""
    import re

    import numpy as np

    from minilm.__main__ import main
    from minilm.checkpoint import read_meta

    base = (tiny / "base.npz").read_bytes()
    assert main(["reward", "base.npz", "--data", rule_pairs(tiny), "--steps", "80", "--lr", "1e-2", "--keep-last",
                 "--out", "rm.npz"]) == 0
    assert "-> 100%" in capsys.readouterr().out  # the held-out pairs ranked right
    assert main(["finetune", "base.npz", *PG_ARGS, "--out", "pg.npz"]) == 0
    out = capsys.readouterr().out
    assert "by policy gradient on 4 sampled answers per prompt scored by rm.npz (KL penalty 0.05" in out
    first, last, kl_first, kl_last = map(float, re.search(
        r"mean reward (\S+) -> (\S+), KL to the starting model (\S+) -> (\S+) ", out).groups())
    assert last > first + 1 and kl_last > kl_first >= 0
    assert answers_with_w1("pg.npz") >= answers_with_w1("base.npz") + 15
    assert (tiny / "base.npz").read_bytes() == base
    meta = read_meta("pg.npz")
    assert meta["objective"] == {"name": "pg", "group_size": 4, "kl_coef": 0.05, "max_new_tokens": 16}
    assert len(meta["history"]["step_metrics"]) == 20 and np.isfinite(meta["history"]["step_metrics"][-1]["kl"])
    assert main(["finetune", "base.npz", "--reward", "rm.npz", "--data", "pairs.jsonl", "--out", "pg.npz",
                 "--resume", "--steps", "22"]) == 0
    assert "sampled answers: mean reward" in capsys.readouterr().out
    assert read_meta("pg.npz")["step"] == 22 and len(read_meta("pg.npz")["history"]["step_metrics"]) == 22
    for flag, value, stored in (("--group-size", "3", "4"), ("--max-new-tokens", "8", "16")):
        line = refused(capsys, "finetune", "base.npz", *PG_ARGS, "--out", "pg.npz", "--resume", "--steps", "30",
                       flag, value)
        assert f"{flag} {value} conflicts with the run in pg.npz, which has {flag} {stored}" in line


def test_policy_gradient_with_lora_leaves_the_base_weights_bit_for_bit(tiny):
    """On adapters, the reference is the base's own frozen arrays: after the run they are the checkpoint's."""
    import numpy as np

    from minilm.base import Base
    from minilm.checkpoint import load_model
    from minilm.finetune import FinetuneSettings, finetune

    random_reward_model(tiny)
    settings = FinetuneSettings(objective="pg", reward_model="rm.npz", lora_rank=2, steps=3, batch_size=2, lr=1e-2)
    tuned, _, result = finetune(Base(checkpoint="base.npz"), "pairs.jsonl", "pg.npz", settings, progress=False,
                                say=lambda line: None)
    base = load_model("base.npz")[0]
    assert all(np.array_equal(tuned.frozen[k], p) for k, p in base.params.items())
    assert any(np.abs(p).max() > 0 for k, p in tuned.params.items() if k.endswith("lora_b"))
    assert result["steps"] == 3 and set(result["measured"]) == {"reward", "kl"}


def test_a_policy_gradient_run_that_diverges_keeps_the_checkpoint_it_found(tiny):
    """--lr 1e30: after one step the policy's logits are no longer finite, no answer can be sampled, and the run
    stops with one line; the checkpoint it would have replaced is untouched. Run as a user runs it."""
    random_reward_model(tiny)
    (tiny / "precious.npz").write_bytes((tiny / "base.npz").read_bytes())
    before = (tiny / "precious.npz").read_bytes()
    result = minilm("finetune", "base.npz", "--objective", "pg", "--reward", "rm.npz", "--data", "pairs.jsonl",
                    "--steps", "3", "--lr", "1e30", "--out", "precious.npz", "--overwrite", cwd=tiny)
    line = last_line_alone(result.stderr)
    assert result.returncode == 1 and "NaN or infinite" in line and "precious.npz is as it was" in line
    assert (tiny / "precious.npz").read_bytes() == before


def random_reward_model(folder, name="rm.npz", words=None):
    """rm.npz: a reward model of the tiny model whose head is drawn at random (so answers get different rewards),
    written without training; with words, one whose tokenizer holds those words instead of the model's."""
    import numpy as np

    from minilm.checkpoint import load_model, read_meta, save_checkpoint
    from minilm.reward import RewardModel

    decoder = load_model(str(folder / "base.npz"))[0]
    rm = RewardModel(decoder, {"reward.w": np.random.default_rng(0).standard_normal(decoder.config.d_model),
                               "reward.b": np.zeros(1)})
    tokenizer = read_meta(str(folder / "base.npz"))["tokenizer"]
    save_checkpoint(str(folder / name), rm.params, {**rm.checkpoint_meta(), "tokenizer": {**tokenizer, "words": words}
                                                    if words else tokenizer})


@pytest.mark.parametrize("args, fragment", [
    (("--reward", "missing.npz"), "--reward missing.npz: no such checkpoint; train a reward model with `reward`"),
    (("--reward", "base.npz"), "--reward base.npz holds a GPT, not a reward model: train one with `reward`"),
    (("--reward", "other.npz"), "--reward other.npz reads another tokenizer than the model it is to score"),
    ((), "give --reward RM_CKPT, a checkpoint of `reward`"),
    (("--reward", "rm.npz", "--data", "texts.jsonl"), 'texts.jsonl, line 1 needs a "prompt" string'),
    (("--reward", "rm.npz", "--data", "missing.jsonl"), "no data file at missing.jsonl"),
])
def test_bad_policy_gradient_input_is_one_line_and_touches_no_file(tiny, capsys, args, fragment):
    """Each refused with one line and exit 1, and an existing --out left as it was."""
    random_reward_model(tiny)
    rm = (tiny / "rm.npz").read_bytes()
    random_reward_model(tiny, "other.npz", words=["another", "vocabulary"])
    (tiny / "texts.jsonl").write_text('{"text": "w1 w2"}\n')
    (tiny / "out.npz").write_bytes(b"kept")
    data = ("--data", "pairs.jsonl") if "--data" not in args else ()
    line = refused(capsys, "finetune", "base.npz", "--objective", "pg", *data, *args, "--out", "out.npz",
                   "--overwrite", "--steps", "2", before_the_work=False)
    assert fragment in line
    assert (tiny / "out.npz").read_bytes() == b"kept" and (tiny / "rm.npz").read_bytes() == rm


def test_policy_gradient_flags_are_checked_where_they_are_parsed_and_refused_without_pg(tiny, capsys):
    from minilm.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["finetune", "base.npz", "--objective", "pg", "--reward", "rm.npz", "--data", "pairs.jsonl",
              "--group-size", "1"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "argument --group-size: give a whole number of 2" in err
    for flag in (("--group-size", "3"), ("--kl-coef", "0.1"), ("--reward", "rm.npz"), ("--max-new-tokens", "4")):
        line = refused(capsys, *finetune_args(*flag, "--out", "o.npz"))
        assert f"{flag[0]} is policy gradient's: give --objective pg with it" in line
    assert not os.path.exists(tiny / "o.npz")
