"""toyworld: a tagged corpus in which next-word prediction is visibly multi-task learning.

Each example is one short sentence from one task family of the lecture:

    grammar      in my free time , she [likes] to code .            (agreement with the subject)
    lists        i went to the store to buy papaya , dragon fruit and durian . they are all kinds of [fruit] .
    facts_head   the capital of france is [paris] .                  (a frequent fact)
    facts_tail   the capital of tuvalu is [funafuti] .               (a rare fact: Zipf's long tail)
    sentiment    i was on the edge of my seat the whole time . the movie was [good] .
    translation  the word for pretty in spanish is [bonita] .
    spatial      iroh went to the kitchen . zuko went to the garden . iroh left the [kitchen] .
    arithmetic   4 7 + 3 8 = [0 8 5] .                               (one token per digit, fixed width)

The words in [brackets] are the example's *answer tokens*: the positions where the task is decided.
Every other token (the prompt, the full stop, the `<eos>` between examples) is *context*. Because each
token knows its task and whether it is an answer, a model's loss over the corpus splits exactly into
a weighted sum of per-task losses, and every task has an exact-match accuracy.

Everything is generated from a seed. The training stream and the held-out evaluation set come from
separate random streams, and for the tasks where the model must generalise rather than recall
(lists, sentiment, spatial, arithmetic) a fixed hash of the prompt sends each possible prompt to
exactly one side, so no evaluation prompt ever appears in training. Facts, translations and grammar
are things to *remember*, so there the evaluation asks about the same facts the training data holds.
"""
import functools
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import MinilmError

TASKS = ("grammar", "lists", "facts_head", "facts_tail", "sentiment", "translation", "spatial", "arithmetic")
FAMILIES = ("grammar", "lists", "facts", "sentiment", "translation", "spatial", "arithmetic")
EOS = "<eos>"
SPLITS = ("train", "eval")
EVAL_SHARE = 8  # for generalisation tasks, 1 prompt in EVAL_SHARE belongs to the held-out side

# ----------------------------------------------------------------------------------------------------
# The world's word lists.

GRAMMAR_SUBJECTS = {  # subject -> does it take the -s form of the verb?
    "i": False, "you": False, "we": False, "they": False, "my parents": False, "the kids": False,
    "he": True, "she": True, "my friend": True, "the teacher": True,
}
GRAMMAR_TEMPLATES = (  # (words before the subject, (base, -s form of the verb), words after it, their fillers)
    ("in my free time ,", ("like", "likes"), "to {}", ("code", "swim", "read", "paint", "cook", "dance")),
    ("every morning", ("walk", "walks"), "to the {}", ("park", "school", "station", "river", "market")),
    ("on weekends", ("play", "plays"), "{} with friends", ("chess", "football", "cards", "music")),
)

LIST_CATEGORIES = {
    "fruit": ("papaya", "dragon fruit", "durian", "mango", "banana", "apple", "kiwi", "lychee", "guava", "pear"),
    "vegetable": ("carrot", "onion", "spinach", "potato", "leek", "celery", "cabbage", "zucchini", "radish"),
    "animal": ("squirrel", "aardvark", "zebra", "lion", "otter", "camel", "badger", "walrus", "lemur"),
    "tool": ("hammer", "wrench", "saw", "drill", "chisel", "shovel", "rake", "screwdriver"),
    "instrument": ("violin", "flute", "drum", "piano", "trumpet", "harp", "cello", "banjo"),
}
LIST_OPENINGS = ("i went to the store to buy", "my list said", "we talked about")

# Real capitals first (the head of the distribution is the famous ones), made-up ones after.
CAPITALS = (
    ("france", "paris"), ("japan", "tokyo"), ("italy", "rome"), ("spain", "madrid"), ("germany", "berlin"),
    ("egypt", "cairo"), ("russia", "moscow"), ("china", "beijing"), ("greece", "athens"), ("peru", "lima"),
    ("azerbaijan", "baku"), ("kenya", "nairobi"), ("norway", "oslo"), ("cuba", "havana"), ("ireland", "dublin"),
    ("portugal", "lisbon"), ("austria", "vienna"), ("poland", "warsaw"), ("hungary", "budapest"),
    ("sweden", "stockholm"), ("finland", "helsinki"), ("denmark", "copenhagen"), ("turkey", "ankara"),
    ("iran", "tehran"), ("iraq", "baghdad"), ("thailand", "bangkok"), ("vietnam", "hanoi"), ("chile", "santiago"),
    ("nepal", "kathmandu"), ("ghana", "accra"), ("nigeria", "abuja"), ("mali", "bamako"), ("senegal", "dakar"),
    ("morocco", "rabat"), ("tunisia", "tunis"), ("libya", "tripoli"), ("sudan", "khartoum"), ("uganda", "kampala"),
    ("rwanda", "kigali"), ("zambia", "lusaka"), ("angola", "luanda"), ("canada", "ottawa"), ("brazil", "brasilia"),
    ("colombia", "bogota"), ("venezuela", "caracas"), ("ecuador", "quito"), ("bolivia", "sucre"),
    ("uruguay", "montevideo"), ("paraguay", "asuncion"), ("australia", "canberra"), ("fiji", "suva"),
    ("samoa", "apia"), ("indonesia", "jakarta"), ("philippines", "manila"), ("laos", "vientiane"),
    ("bhutan", "thimphu"), ("bangladesh", "dhaka"), ("pakistan", "islamabad"), ("afghanistan", "kabul"),
    ("uzbekistan", "tashkent"), ("kazakhstan", "astana"), ("kyrgyzstan", "bishkek"), ("tajikistan", "dushanbe"),
    ("turkmenistan", "ashgabat"), ("georgia", "tbilisi"), ("armenia", "yerevan"), ("syria", "damascus"),
    ("lebanon", "beirut"), ("jordan", "amman"), ("yemen", "sanaa"), ("oman", "muscat"), ("qatar", "doha"),
    ("bahrain", "manama"), ("iceland", "reykjavik"), ("estonia", "tallinn"), ("latvia", "riga"),
    ("lithuania", "vilnius"), ("belarus", "minsk"), ("ukraine", "kyiv"), ("moldova", "chisinau"),
    ("romania", "bucharest"), ("bulgaria", "sofia"), ("serbia", "belgrade"), ("croatia", "zagreb"),
    ("slovenia", "ljubljana"), ("slovakia", "bratislava"), ("albania", "tirana"), ("belgium", "brussels"),
    ("netherlands", "amsterdam"), ("switzerland", "bern"), ("malta", "valletta"), ("cyprus", "nicosia"),
    ("jamaica", "kingston"), ("honduras", "tegucigalpa"), ("nicaragua", "managua"), ("guyana", "georgetown"),
    ("suriname", "paramaribo"), ("namibia", "windhoek"), ("botswana", "gaborone"), ("zimbabwe", "harare"),
    ("mozambique", "maputo"), ("madagascar", "antananarivo"), ("malawi", "lilongwe"), ("tanzania", "dodoma"),
    ("somalia", "mogadishu"), ("eritrea", "asmara"), ("chad", "ndjamena"), ("niger", "niamey"),
    ("cameroon", "yaounde"), ("gabon", "libreville"), ("congo", "brazzaville"), ("liberia", "monrovia"),
    ("togo", "lome"), ("guinea", "conakry"), ("gambia", "banjul"), ("mauritania", "nouakchott"),
    ("algeria", "algiers"), ("burundi", "gitega"), ("tuvalu", "funafuti"), ("palau", "ngerulmud"),
)
_SYLLABLES = ("ba", "ko", "ri", "tu", "me", "sa", "lo", "vi", "na", "de", "zu", "pe", "gra", "mon", "tel", "quo")

TRANSLATIONS = {  # english -> (spanish, french, german)
    "pretty": ("bonita", "jolie", "schoen"), "dog": ("perro", "chien", "hund"), "cat": ("gato", "chat", "katze"),
    "house": ("casa", "maison", "haus"), "water": ("agua", "eau", "wasser"), "red": ("rojo", "rouge", "rot"),
    "book": ("libro", "livre", "buch"), "sun": ("sol", "soleil", "sonne"), "moon": ("luna", "lune", "mond"),
    "bread": ("pan", "baguette", "brot"), "cheese": ("queso", "fromage", "kaese"), "tree": ("arbol", "arbre", "baum"),
    "friend": ("amigo", "ami", "freund"), "green": ("verde", "vert", "gruen"), "blue": ("azul", "bleu", "blau"),
    "hello": ("hola", "bonjour", "hallo"), "thanks": ("gracias", "merci", "danke"),
    "city": ("ciudad", "ville", "stadt"),
    "sea": ("mar", "mer", "meer"), "night": ("noche", "nuit", "nacht"), "day": ("dia", "jour", "tag"),
    "apple": ("manzana", "pomme", "apfel"), "car": ("coche", "voiture", "auto"), "milk": ("leche", "lait", "milch"),
    "fish": ("pez", "poisson", "fisch"), "horse": ("caballo", "cheval", "pferd"), "bird": ("pajaro", "oiseau", "vogel"),
    "door": ("puerta", "porte", "tuer"), "window": ("ventana", "fenetre", "fenster"),
    "flower": ("flor", "fleur", "blume"),
    "snow": ("nieve", "neige", "schnee"), "fire": ("fuego", "feu", "feuer"), "black": ("negro", "noir", "schwarz"),
    "white": ("blanco", "blanc", "weiss"), "big": ("grande", "grand", "gross"), "small": ("pequeno", "petit", "klein"),
}
LANGUAGES = ("spanish", "french", "german")

SENTIMENT_PHRASES = {
    "good": ("i was on the edge of my seat the whole time", "the acting was brilliant", "i laughed all the way through",
             "i would watch it again", "the story moved me to tears", "every scene was a delight"),
    "bad": ("i fell asleep halfway through", "the plot made no sense", "i want my money back",
            "the acting was wooden", "we walked out early", "every scene dragged on"),
}
SENTIMENT_FILLER = ("we saw it on a tuesday", "the theater was full", "we shared some popcorn", "it ran two hours")

SPATIAL_PEOPLE = ("iroh", "zuko", "aang", "katara", "sokka", "toph")
SPATIAL_ROOMS = ("kitchen", "garden", "library", "store", "bedroom", "attic", "garage", "cellar")


# ----------------------------------------------------------------------------------------------------
# Configuration and examples.

@dataclass(frozen=True)
class ToyworldConfig:
    """The knobs of the world. Difficulty and mixture are what a sweep tunes."""
    mixture: dict = field(default_factory=lambda: {
        "grammar": 1.0, "lists": 1.0, "facts": 2.0, "sentiment": 1.0, "translation": 1.0, "spatial": 1.0,
        "arithmetic": 2.0})  # family -> relative frequency (of examples, not tokens)
    n_facts: int = 120            # how many (country, capital) facts the world holds
    n_head_facts: int = 20        # the most frequent facts are "facts_head", the rest "facts_tail"
    zipf_exponent: float = 1.0    # fact of rank r appears with probability proportional to 1 / r**zipf_exponent
    arithmetic_digits: int = 2    # operands have up to this many digits
    list_length: int = 3          # items in a list example
    spatial_people: int = 2       # people moving around in a story
    spatial_moves: int = 3        # "went to" sentences in a story
    sentiment_filler: int = 1     # neutral sentences mixed into a review

    def __post_init__(self):
        unknown = set(self.mixture) - set(FAMILIES)
        if unknown or not self.mixture or min(self.mixture.values()) < 0 or sum(self.mixture.values()) <= 0:
            raise MinilmError(f"toyworld mixture {self.mixture}: give non-negative weights for some of {FAMILIES}")
        checks = [("n_facts", self.n_facts, 1, 10_000), ("n_head_facts", self.n_head_facts, 0, self.n_facts),
                  ("arithmetic_digits", self.arithmetic_digits, 1, 6), ("list_length", self.list_length, 2, 6),
                  ("spatial_people", self.spatial_people, 1, len(SPATIAL_PEOPLE)),
                  ("spatial_moves", self.spatial_moves, self.spatial_people, 12),
                  ("sentiment_filler", self.sentiment_filler, 0, len(SENTIMENT_FILLER))]
        for name, value, lo, hi in checks:
            if not lo <= value <= hi:
                raise MinilmError(f"toyworld {name}={value}: must be between {lo} and {hi}")
        if self.zipf_exponent < 0:
            raise MinilmError(f"toyworld zipf_exponent={self.zipf_exponent}: must be >= 0 (0 means uniform)")


@dataclass(frozen=True)
class Example:
    """One sentence of one task. answer_positions index into words (a contiguous span)."""
    words: tuple
    task: str
    answer_positions: tuple

    @property
    def prompt(self):
        return self.words[:self.answer_positions[0]]

    @property
    def answer(self):
        return tuple(self.words[i] for i in self.answer_positions)

    @property
    def text(self):
        return " ".join(self.words)

    def marked(self):
        """The sentence with its answer in [brackets], for reading."""
        a, b = self.answer_positions[0], self.answer_positions[-1] + 1
        return " ".join(self.words[:a] + ("[" + " ".join(self.words[a:b]) + "]",) + self.words[b:])


def _example(prompt, answer, rest, task):
    """Build an Example from word strings: prompt + answer + rest."""
    p, a, r = prompt.split(), answer.split(), rest.split()
    return Example(tuple(p + a + r), task, tuple(range(len(p), len(p) + len(a))))


# ----------------------------------------------------------------------------------------------------
# The world itself: which facts exist and how often each one is mentioned.

def facts(config):
    """The world's (country, capital) pairs in rank order: real ones, then made-up ones."""
    return _facts_list(config.n_facts)


@functools.lru_cache(maxsize=8)
def _facts_list(n_facts):
    pairs = list(CAPITALS[:n_facts])
    rng = np.random.default_rng(12345)  # the made-up part of the world is fixed, not a training seed
    used = {w for pair in CAPITALS for w in pair}
    while len(pairs) < n_facts:
        country, capital = (_made_up_word(rng, 3) + "ia", _made_up_word(rng, 2))
        if country not in used and capital not in used:
            used |= {country, capital}
            pairs.append((country, capital))
    return tuple(pairs)


def _made_up_word(rng, n_syllables):
    return "".join(rng.choice(_SYLLABLES, size=n_syllables))


def fact_probabilities(config):
    """Zipf's law over facts: p(rank r) proportional to 1 / r**s, r = 1, 2, ..."""
    return _zipf(config.n_facts, config.zipf_exponent)


@functools.lru_cache(maxsize=8)
def _zipf(n, s):
    weights = 1.0 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


# ----------------------------------------------------------------------------------------------------
# One generator per task family: rng -> Example. The `key` of an example is the part of its prompt
# that decides which split it may appear in.

def _grammar(rng, config):
    opening, (base, s_form), after, fillers = GRAMMAR_TEMPLATES[rng.integers(len(GRAMMAR_TEMPLATES))]
    subject = list(GRAMMAR_SUBJECTS)[rng.integers(len(GRAMMAR_SUBJECTS))]
    verb = s_form if GRAMMAR_SUBJECTS[subject] else base
    rest = after.format(fillers[rng.integers(len(fillers))]) + " ."
    return _example(f"{opening} {subject}", verb, rest, "grammar"), None


def _lists(rng, config):
    category = list(LIST_CATEGORIES)[rng.integers(len(LIST_CATEGORIES))]
    items = [LIST_CATEGORIES[category][i] for i in
             rng.choice(len(LIST_CATEGORIES[category]), size=config.list_length, replace=False)]
    listed = " , ".join(items[:-1]) + " and " + items[-1]
    prompt = f"{LIST_OPENINGS[rng.integers(len(LIST_OPENINGS))]} {listed} . they are all kinds of"
    return _example(prompt, category, ".", "lists"), prompt


def _facts(rng, config):
    rank = rng.choice(config.n_facts, p=fact_probabilities(config))
    country, capital = facts(config)[rank]
    task = "facts_head" if rank < config.n_head_facts else "facts_tail"
    return _example(f"the capital of {country} is", capital, ".", task), None


def _sentiment(rng, config):
    label = ("good", "bad")[rng.integers(2)]
    cue = SENTIMENT_PHRASES[label][rng.integers(len(SENTIMENT_PHRASES[label]))]
    fillers = [SENTIMENT_FILLER[i] for i in rng.choice(len(SENTIMENT_FILLER), config.sentiment_filler, replace=False)]
    sentences = [cue] + fillers
    rng.shuffle(sentences)
    prompt = " . ".join(sentences) + " . the movie was"
    return _example(prompt, label, ".", "sentiment"), prompt


def _translation(rng, config):
    english = list(TRANSLATIONS)[rng.integers(len(TRANSLATIONS))]
    language = rng.integers(len(LANGUAGES))
    prompt = f"the word for {english} in {LANGUAGES[language]} is"
    return _example(prompt, TRANSLATIONS[english][language], ".", "translation"), None


def _spatial(rng, config):
    people = [SPATIAL_PEOPLE[i] for i in rng.choice(len(SPATIAL_PEOPLE), config.spatial_people, replace=False)]
    movers = people + [people[i] for i in rng.integers(len(people), size=config.spatial_moves - len(people))]
    rng.shuffle(movers)  # everyone moves at least once, in a random order
    where, story = {}, []
    for person in movers:
        where[person] = SPATIAL_ROOMS[rng.integers(len(SPATIAL_ROOMS))]
        story.append(f"{person} went to the {where[person]} .")
    asked = people[rng.integers(len(people))]
    prompt = " ".join(story) + f" {asked} left the"
    return _example(prompt, where[asked], ".", "spatial"), prompt


def _arithmetic(rng, config):
    d = config.arithmetic_digits
    a, b = rng.integers(10 ** d, size=2)
    prompt = f"{_digits(a, d)} + {_digits(b, d)} ="
    return _example(prompt, _digits(a + b, d + 1), ".", "arithmetic"), prompt


def _digits(n, width):
    """(12, 3) -> '0 1 2': one token per digit, so a multi-digit answer is several next-word predictions.
    Zero-padding to a fixed width puts every digit at the same place in every problem (an exam's columns)."""
    return " ".join(f"{int(n):0{width}d}")


GENERATORS = {"grammar": _grammar, "lists": _lists, "facts": _facts, "sentiment": _sentiment,
              "translation": _translation, "spatial": _spatial, "arithmetic": _arithmetic}


def split_of(key):
    """The split a generalisation prompt belongs to, fixed by a hash of its words (None: both)."""
    if key is None:
        return None
    return "eval" if zlib.crc32(key.encode()) % EVAL_SHARE == 0 else "train"


# ----------------------------------------------------------------------------------------------------
# Drawing examples, and turning them into token streams.

def generate(config, n_examples, seed=0, split="train"):
    """n_examples Examples drawn from the mixture; the same (config, seed, split) gives the same list.

    The eval split draws from its own random stream (seeded by (seed, 1), train by (seed, 0)).
    """
    if split not in SPLITS:
        raise MinilmError(f"toyworld split {split!r}: use one of {SPLITS}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    names = [f for f in FAMILIES if config.mixture.get(f, 0) > 0]
    weights = np.array([config.mixture[f] for f in names], dtype=float)
    families = rng.choice(len(names), size=n_examples, p=weights / weights.sum())
    return [_draw(GENERATORS[names[f]], rng, config, split) for f in families]


def _draw(generator, rng, config, split):
    """Draw from one family until the prompt belongs to this split."""
    while True:
        example, key = generator(rng, config)
        if split_of(key) in (None, split):
            return example


def vocabulary(config):
    """Every word any example of this world can contain, sorted (the tokenizer's word list)."""
    words = {".", ",", "+", "=", *map(str, range(10))}
    for opening, verbs, after, fillers in GRAMMAR_TEMPLATES:
        words.update(opening.split(), verbs, after.replace("{}", "").split(), fillers)
    words.update(w for s in GRAMMAR_SUBJECTS for w in s.split())
    words.update(w for items in LIST_CATEGORIES.values() for item in items for w in item.split())
    words.update(LIST_CATEGORIES, "and they are all kinds of".split(), *(o.split() for o in LIST_OPENINGS))
    words.update(w for pair in facts(config) for w in pair)
    words.update("the capital of is".split())
    words.update(TRANSLATIONS, (w for pair in TRANSLATIONS.values() for w in pair), LANGUAGES)
    words.update("the word for in is".split())
    words.update(w for phrases in SENTIMENT_PHRASES.values() for p in phrases for w in p.split())
    words.update(w for p in SENTIMENT_FILLER for w in p.split())
    words.update("the movie was good bad".split())
    words.update(SPATIAL_PEOPLE, SPATIAL_ROOMS, "went to the left".split())
    return sorted(words)


def to_stream(examples, tokenizer):
    """Examples -> one token stream with per-token labels.

    Returns (tokens, task_ids, is_answer), three 1-D NumPy arrays of the same length:
        tokens     <eos> ex1 <eos> ex2 <eos> ...   (int32 token ids)
        task_ids   index into TASKS of the example each token belongs to (its closing <eos> included)
        is_answer  True at the answer tokens
    Position t's label describes token t as a *target*: the loss of predicting token t from tokens < t.
    The leading <eos> is never a target; it takes the first example's task.
    """
    if not examples:
        raise MinilmError("toyworld.to_stream: no examples; generate at least one")
    eos = tokenizer.encode(EOS)
    tokens, task_ids, is_answer = list(eos), [TASKS.index(examples[0].task)], [False]
    for ex in examples:
        ids = tokenizer.encode(ex.text) + eos  # the example, closed by <eos>
        tokens += ids
        task_ids += [TASKS.index(ex.task)] * len(ids)
        is_answer += [i in ex.answer_positions for i in range(len(ids))]
    return np.array(tokens, dtype=np.int32), np.array(task_ids, dtype=np.int16), np.array(is_answer, dtype=bool)
