"""`python -m minilm`: the demo, and the subcommands.

    python -m minilm                         train a small model on a synthetic corpus and show what it learned
    python -m minilm train --text FILE       train a byte-level model on any text file
    python -m minilm sample CKPT --prompt P  continue a prompt with a trained model
    python -m minilm sweep --preset lesson03 train a family of model sizes, fit a scaling law
    python -m minilm grade PATH              grade an exercise notebook (or a folder of them)
    python -m minilm archs                   encoder-decoder vs prefix-LM vs decoder-only, same budget (lesson 02)

Every error the user can cause is printed as one line, with a non-zero exit.
"""
import argparse
import os
import sys
import time

import numpy as np

from .errors import MinilmError
from .grading import add_grade_command
from .inverse_scaling import add_glib_command
from .seq2seq import add_archs_command


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (not a usage block) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get("MPLBACKEND") is None:
        import matplotlib
        matplotlib.use("Agg")  # the CLI only writes PNG files
    try:
        return args.run(args) or 0
    except MinilmError as e:
        print(f"minilm: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("minilm: interrupted", file=sys.stderr)
        return 130


def build_parser():
    parser = Parser(prog="python -m minilm", description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_demo_options(parser)
    parser.set_defaults(run=run_demo)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for register in (add_train_command, add_sample_command, add_sweep_command, add_grade_command,
                     add_archs_command, add_glib_command):
        register(commands)
    return parser


def add_device_option(parser):
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"),
                        help="cpu (NumPy, the default) or cuda (CuPy); also MINILM_DEVICE")


def add_model_options(parser, steps, block_size, d_model, n_layer, n_head, batch_size, lr):
    group = parser.add_argument_group("model and training")
    group.add_argument("--steps", type=int, default=steps, help="optimizer steps (default %(default)s)")
    group.add_argument("--block-size", type=int, default=block_size, help="context length in tokens (default %(default)s)")
    group.add_argument("--d-model", type=int, default=d_model, help="width (default %(default)s)")
    group.add_argument("--n-layer", type=int, default=n_layer, help="transformer blocks (default %(default)s)")
    group.add_argument("--n-head", type=int, default=n_head, help="attention heads (default %(default)s)")
    group.add_argument("--batch-size", type=int, default=batch_size, help="sequences per step (default %(default)s)")
    group.add_argument("--lr", type=float, default=lr, help="peak learning rate (default %(default)s)")
    group.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")


def model_and_train_config(args, vocab_size):
    from .model import GPTConfig
    from .train import TrainConfig

    config = GPTConfig(vocab_size=vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                       n_head=args.n_head, d_model=args.d_model)
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               eval_every=max(1, args.steps // 10), seed=args.seed)
    return config, train_config


def split_tokens(tokens, val_share=0.1):
    """The last val_share of the tokens is held out for validation."""
    cut = int(len(tokens) * (1 - val_share))
    return tokens[:cut], tokens[cut:]


def train_and_report(model, train_tokens, val_tokens, train_config, out, tokenizer, resume=False):
    """Train with a progress bar (or resume), then save the loss curve. Returns the Trainer."""
    from . import plots
    from .backend import device_name
    from .train import Trainer

    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, "model.npz")
    if resume:
        trainer = Trainer.resume(checkpoint, train_tokens, val_tokens, device=device_name(model.xp))
    else:
        trainer = Trainer(model, train_tokens, val_tokens, train_config, checkpoint, tokenizer)
    print(f"model: {trainer.model.num_params():,} parameters ({trainer.model.num_params(non_embedding=True):,} non-embedding), "
          f"{len(train_tokens):,} training tokens")
    start = time.time()
    history = trainer.run()
    history_note = " (interrupted: saved, run again with --resume to continue)" if history.stopped else ""
    print(f"trained {trainer.step} steps in {time.time() - start:.0f} s{history_note}: "
          f"loss {history.losses[0]:.2f} -> {np.mean(history.losses[-10:]):.2f}"
          + (f", validation {history.val_losses[-1]:.2f}" if history.val_losses else ""))
    figure = plots.save(plots.loss_curve(history), os.path.join(out, "loss.png"))
    print(f"checkpoint: {checkpoint}\nloss curve: {figure}")
    return trainer


# --------------------------------------------------------------------------------------------------
# The demo

def add_demo_options(parser):
    add_device_option(parser)
    parser.add_argument("--out", default=os.path.join("runs", "demo"), help="folder for the checkpoint and figure (default %(default)s)")
    parser.add_argument("--demo-steps", type=int, default=2000, help="optimizer steps (default %(default)s)")


DEMO_PROMPTS = ("in my free time , she", "the capital of france is", "the word for pretty in spanish is",
                "i want my money back . the movie was")


def run_demo(args):
    from .backend import get_xp
    from .data import toyworld
    from .evaluate import evaluate, per_task_table
    from .generate import generate
    from .model import GPT
    from .tokenizer import WordTokenizer

    get_xp(args.device)  # fail early and clearly if the device is not usable
    world = toyworld.ToyworldConfig()  # the lecture's task families, tagged (minilm/data/toyworld.py)
    tokenizer = WordTokenizer(toyworld.vocabulary(world))
    val_examples = toyworld.generate(world, 1000, seed=0, split="eval")
    train_tokens = toyworld.to_stream(toyworld.generate(world, 30000, seed=0), tokenizer)[0]
    val_tokens = toyworld.to_stream(val_examples, tokenizer)[0]
    args.steps, args.block_size, args.d_model, args.n_layer, args.n_head = args.demo_steps, 32, 64, 2, 4
    args.batch_size, args.lr, args.seed = 16, 3e-3, 0
    config, train_config = model_and_train_config(args, tokenizer.vocab_size)
    model = GPT(config, seed=0, device=args.device)
    trainer = train_and_report(model, train_tokens, val_tokens, train_config, args.out, tokenizer)
    print("\nper-task loss and accuracy on held-out examples (answer tokens):")
    print(per_task_table(evaluate(trainer.model, val_examples, tokenizer)))
    print("\ncompletions (greedy):")
    for prompt in DEMO_PROMPTS:
        new = generate(trainer.model, [tokenizer.eos_id] + tokenizer.encode(prompt), 8, temperature=0, eos_id=tokenizer.eos_id)
        print(f"  {prompt} | {tokenizer.decode(t for t in new if t != tokenizer.eos_id)}")


# --------------------------------------------------------------------------------------------------
# train --text FILE

def add_train_command(commands):
    p = commands.add_parser("train", help="train a byte-level model on a text file",
                            description="Train a byte-level GPT on any UTF-8 text file (90%% train, 10%% validation).")
    p.add_argument("--text", required=True, help="a UTF-8 text file")
    p.add_argument("--out", default=os.path.join("runs", "text"), help="folder for the checkpoint and figure (default %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    add_device_option(p)
    add_model_options(p, steps=1000, block_size=64, d_model=128, n_layer=4, n_head=4, batch_size=16, lr=2e-3)
    p.set_defaults(run=run_train)


def read_text(path):
    if not os.path.isfile(path):
        raise MinilmError(f"text file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise MinilmError(f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise MinilmError(f"{path} is empty: give a file with some text in it")
    return text


def run_train(args):
    from .model import GPT
    from .tokenizer import ByteTokenizer

    tokenizer = ByteTokenizer()
    tokens = np.array(tokenizer.encode(read_text(args.text)), dtype=np.int32)
    train_tokens, val_tokens = split_tokens(tokens)
    if len(val_tokens) <= args.block_size:
        raise MinilmError(f"{args.text} is too short ({len(tokens)} bytes) for --block-size {args.block_size}: "
                          f"use a longer text (at least {10 * (args.block_size + 1)} bytes) or a smaller --block-size")
    config, train_config = model_and_train_config(args, tokenizer.vocab_size)
    model = GPT(config, seed=args.seed, device=args.device)
    train_and_report(model, train_tokens, val_tokens, train_config, args.out, tokenizer, resume=args.resume)


# --------------------------------------------------------------------------------------------------
# sample CKPT --prompt

def add_sample_command(commands):
    p = commands.add_parser("sample", help="continue a prompt with a trained model",
                            description="Sample a continuation from a checkpoint written by the demo or by train.")
    p.add_argument("checkpoint", help="a .npz checkpoint")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default %(default)s)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    add_device_option(p)
    p.set_defaults(run=run_sample)


def run_sample(args):
    from .checkpoint import load_model
    from .generate import generate
    from .tokenizer import tokenizer_from_json

    model, _, meta = load_model(args.checkpoint, device=args.device)
    if not meta.get("tokenizer"):
        raise MinilmError(f"{args.checkpoint} holds no tokenizer, so its text cannot be decoded")
    tokenizer = tokenizer_from_json(meta["tokenizer"])
    prompt = tokenizer.encode(args.prompt)
    if not prompt:
        raise MinilmError("the prompt is empty: give some text with --prompt")
    prompt = prompt[-(model.config.block_size - 1):]  # keep room for at least one new token
    new = generate(model, prompt, args.max_new_tokens, args.temperature, args.top_k, tokenizer.eos_id, args.seed)
    sep = " " if tokenizer.kind == "word" else ""
    print(args.prompt + sep + tokenizer.decode(new))


# --------------------------------------------------------------------------------------------------
# sweep --preset NAME / sweep --report RESULTS.json

def add_sweep_command(commands):
    from .scaling import PRESETS

    p = commands.add_parser("sweep", help="train a family of model sizes on toyworld and fit a scaling law",
                            description="Train every model of a sweep preset on toyworld (resumable: run the same "
                                        "command again to continue), save the results as JSON, and print the fitted "
                                        "power law and the shape of every task's curve.")
    p.add_argument("--preset", default="lesson03", choices=sorted(PRESETS), help="which sweep (default %(default)s)")
    p.add_argument("--out", default=None, help="results JSON (default runs/sweep_PRESET.json)")
    p.add_argument("--report", metavar="RESULTS.json", help="train nothing: print the fit and task shapes of a saved sweep")
    add_device_option(p)
    p.set_defaults(run=run_sweep)


def run_sweep(args):
    from . import scaling

    if args.report:
        print(scaling.report(scaling.load_results(args.report)))
        return
    out = args.out or os.path.join("runs", f"sweep_{args.preset}.json")
    config = scaling.preset(args.preset)
    print(f"sweep {args.preset}: {len(scaling.plan(config))} runs -> {out} (stopped? run the same command to continue)")
    results = scaling.run_sweep(config, out, args.preset, device=args.device)
    print(f"results: {out} ({results.get('wall_seconds', 0):.0f} s of training and evaluation in all)")
    print(scaling.report(results))


if __name__ == "__main__":
    sys.exit(main())
