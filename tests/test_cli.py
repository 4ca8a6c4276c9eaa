"""The command line: the demo works, and every mistake a user can make is one clear line."""
import os
import subprocess
import sys

import pytest

from minilm import backend

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
    again = minilm(*args, "--steps", "20", "--resume")
    assert again.returncode == 0 and "trained 20 steps" in again.stdout


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


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
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
    assert proc.returncode == 0, stderr
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
