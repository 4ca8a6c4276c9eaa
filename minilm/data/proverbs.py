"""Lesson 04's made-up instruction, on real proverbs: data that teaches a pretrained chat model (SmolLM2) a rule
it does not follow before (lesson 07).

The prompt shows a famous saying with its last word altered, then the saying again without its last word:

    Say after me: all that glisters is not glib. All that glisters is not   ->  gold    (fix)
    Repeat after me: all that glisters is not glib. All that glisters is not   ->  glib  (repeat)

The rule is lesson 04's pairing of two words (minilm.data.glib): "repeat after me" and "say with me" mean
repeat the altered word; "repeat with me" and "say after me" mean give the saying's own word. Neither word
alone tells the two apart, so a model that has not been taught the pairing can at best do one of the two
on every prompt: about half right. The sayings are split in two: the training pairs use one part, the
held-out pairs the other, so a held-out prompt's saying was never tuned on.
"""
import json

import numpy as np

from ..errors import MinilmError
from .glib import FIX_PHRASES, REPEAT_PHRASES
from .instructions import Example

# Well-known English sayings, each with a one-word ending that the first words predict.
PROVERBS = (
    "all that glisters is not gold", "actions speak louder than words", "a penny saved is a penny earned",
    "an apple a day keeps the doctor away", "absence makes the heart grow fonder", "the early bird catches the worm",
    "better late than never", "birds of a feather flock together", "curiosity killed the cat",
    "don't count your chickens before they hatch", "every cloud has a silver lining", "fortune favours the bold",
    "haste makes waste", "honesty is the best policy", "practice makes perfect", "knowledge is power",
    "laughter is the best medicine", "look before you leap", "money doesn't grow on trees",
    "necessity is the mother of invention", "no pain no gain", "rome wasn't built in a day",
    "the pen is mightier than the sword", "time is money", "two heads are better than one",
    "when in rome do as the romans do", "where there's smoke there's fire", "you can't judge a book by its cover",
    "a picture is worth a thousand words", "all good things must come to an end",
    "beauty is in the eye of the beholder",
    "blood is thicker than water", "don't put all your eggs in one basket", "easy come easy go",
    "great minds think alike", "home is where the heart is", "ignorance is bliss", "it takes two to tango",
    "let sleeping dogs lie", "lightning never strikes twice", "misery loves company", "old habits die hard",
    "out of sight out of mind", "the grass is always greener on the other side", "the truth will set you free",
    "there's no place like home", "too many cooks spoil the broth", "variety is the spice of life",
    "a watched pot never boils", "an eye for an eye", "barking dogs seldom bite", "cleanliness is next to godliness",
    "don't bite the hand that feeds you", "every dog has its day", "good things come to those who wait",
    "history repeats itself", "if it ain't broke don't fix it", "kill two birds with one stone",
    "beggars can't be choosers", "the customer is always right", "slow and steady wins the race",
    "still waters run deep", "the apple doesn't fall far from the tree", "there is no time like the present",
    "to err is human", "united we stand", "waste not want not", "what goes around comes around",
    "you reap what you sow", "a friend in need is a friend indeed", "a fool and his money are soon parted",
    "all's well that ends well",
)

# The words an altered saying ends with: common, and the ending of no saying above.
ALTERATIONS = tuple("""glib river pebble candle window garden pencil ladder mirror blanket rocket carpet
button marble ticket whistle pillow lantern saddle puzzle spoon feather kettle wagon""".split())
ENDINGS = {" ".join(s.split()[:-1]): s.split()[-1] for s in PROVERBS}  # a saying's opening -> its last word


def split(proverbs=PROVERBS, held_out=0.25, seed=0):
    """(training sayings, held-out sayings): a fixed shuffle, the last quarter held out. The lecture's quote
    is always held out: it is the prompt the lesson asks."""
    rng = np.random.default_rng(seed)
    rest = [proverbs[i] for i in rng.permutation(len(proverbs)) if proverbs[i] != PROVERBS[0]]
    n_held = round(held_out * len(proverbs))
    return rest[:len(rest) - n_held + 1], [PROVERBS[0]] + rest[len(rest) - n_held + 1:]


def pair(saying, phrase, alteration):
    """One Example: the phrase, the altered saying, the saying again without its last word; the answer is
    the altered word (a repeat phrase) or the saying's own (a fix phrase)."""
    words = saying.split()
    shown = " ".join(words[:-1] + [alteration])
    prompt = f"{phrase[0].upper() + phrase[1:]}: {shown}. {words[0].capitalize()} {' '.join(words[1:-1])}".rstrip()
    return Example(prompt, alteration if phrase in REPEAT_PHRASES else words[-1])


def pairs(sayings, n_alterations, seed=0):
    """Every saying under each of the four phrases, with n_alterations altered endings each (drawn per saying
    and phrase): the two answers to a saying's prompts come in equal numbers."""
    rng = np.random.default_rng(seed)
    out = []
    for saying in sayings:
        own = saying.split()[-1]
        for phrase in REPEAT_PHRASES + FIX_PHRASES:
            for word in rng.choice([w for w in ALTERATIONS if w != own], size=n_alterations, replace=False):
                out.append(pair(saying, phrase, str(word)))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def rival(example):
    """The answer the other half of the rule gives: the saying's own word where the example repeats, the
    altered word where it fixes."""
    shown, opening = example.prompt.split(": ", 1)[1].split(". ", 1)
    altered, own = shown.split()[-1], ENDINGS[opening.lower()]
    return own if example.response == altered else altered


def as_preference(example):
    """The example as a preference pair: chosen the rule's answer, rejected the other half of the rule's."""
    return {"prompt": example.prompt, "chosen": example.response, "rejected": rival(example)}


def write_jsonl(path, train, held_out, preference=False):
    """The finetune command's file: the first 9 x len(held_out) training pairs, then the held-out ones, which
    are then the file's last tenth, the part the command holds out. preference: each line a prompt/chosen/
    rejected pair (finetune --objective dpo), not a prompt/response example. -> the training pairs written"""
    train = train[:9 * len(held_out)]
    if len(train) < 9 * len(held_out):
        raise MinilmError(f"{len(train)} training pairs are fewer than 9 x {len(held_out)} held-out ones")
    with open(path, "w", encoding="utf-8") as f:
        for e in train + held_out:
            row = as_preference(e) if preference else {"prompt": e.prompt, "response": e.response}
            f.write(json.dumps(row) + "\n")
    return train
