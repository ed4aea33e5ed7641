"""A synthetic-language fact task: invented book → author facts inside filler text.

Every name is one token. A fact is rendered by a template (a short sentence whose last token is the
author); templates are split into *edit* templates (the phrasings an edit is specified with) and
held-out *paraphrase* templates (phrasings used only to test that an edit generalises). Around each
fact sentence sits filler text drawn from a fixed sparse Markov chain, so the model has non-fact
tokens whose perplexity an edit should leave alone.

Sequences have one fixed length (filler before and after the fact adds up to a constant), so a batch
needs no padding. Everything is a deterministic function of the task's seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from factmlp.factsets import FactSet, unit_rows
from factmlp.options import ParamError

S, A = "<subject>", "<attribute>"

# Ten phrasings of "book S was written by author A"; the attribute is always the last slot.
TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("the", "book", S, "was", "written", "by", A),
    (S, "is", "a", "novel", "by", A),
    ("the", "author", "of", S, "is", A),
    ("who", "wrote", S, "?", "it", "was", A),
    (S, "was", "penned", "by", A),
    ("readers", "of", S, "praise", "its", "author", A),
    (S, ",", "a", "book", "written", "by", A),
    ("the", "novel", S, "comes", "from", "the", "writer", A),
    ("in", "the", "library", S, "is", "shelved", "under", A),
    ("critics", "say", S, "shows", "the", "style", "of", A),
)

BOS, END = "<bos>", "."
# Token classes: each word has its own learned embedding; all subjects share one, all attributes share one.
WORD, SUBJECT, ATTRIBUTE = 0, 1, 2


@dataclass(frozen=True)
class FactTask:
    """Vocabulary, frozen fact embeddings, facts, templates and the filler chain of one task.

    Token ids: ``[0, num_words)`` are words (BOS, template words, '.', filler words), then the
    ``num_facts`` subjects, then the ``num_attributes`` attributes. ``keys`` are the subjects' fact
    embeddings (the MLP's inputs), ``values`` the attributes' fact unembeddings (what the MLP's output
    is decoded against); ``mapping[i]`` is the author of book i.
    """

    words: tuple[str, ...]
    keys: np.ndarray
    values: np.ndarray
    mapping: np.ndarray
    edit_templates: tuple[int, ...]
    paraphrase_templates: tuple[int, ...]
    filler_start: int
    filler_transitions: np.ndarray
    filler_length: int
    word_fact_embeddings: np.ndarray
    seed: int
    templates: tuple[tuple[str, ...], ...] = field(default=TEMPLATES)

    @property
    def num_facts(self) -> int:
        return len(self.keys)

    @property
    def num_attributes(self) -> int:
        return len(self.values)

    @property
    def num_words(self) -> int:
        return len(self.words)

    @property
    def vocab_size(self) -> int:
        return self.num_words + self.num_facts + self.num_attributes

    @property
    def d(self) -> int:
        return self.keys.shape[1]

    @property
    def seq_len(self) -> int:
        """BOS + filler + the longest template + '.'."""
        return 1 + self.filler_length + max(len(t) for t in self.templates) + 1

    def subject_token(self, i):
        return self.num_words + np.asarray(i)

    def attribute_token(self, j):
        return self.num_words + self.num_facts + np.asarray(j)

    def token_classes(self) -> np.ndarray:
        classes = np.full(self.vocab_size, WORD)
        classes[self.num_words:self.num_words + self.num_facts] = SUBJECT
        classes[self.num_words + self.num_facts:] = ATTRIBUTE
        return classes

    def fact_embeddings(self) -> np.ndarray:
        """Vocab × d frozen input table: the keys for subjects, ``word_fact_embeddings`` for words, 0 for attributes."""
        table = np.zeros((self.vocab_size, self.d))
        table[:self.num_words] = self.word_fact_embeddings
        table[self.num_words:self.num_words + self.num_facts] = self.keys
        return table

    def fact_unembeddings(self) -> np.ndarray:
        """Vocab × d frozen output table: the values for attributes and 0 for every other token."""
        table = np.zeros((self.vocab_size, self.d))
        table[self.num_words + self.num_facts:] = self.values
        return table

    def factset(self, mapping: np.ndarray | None = None) -> FactSet:
        """The fact set a fact MLP must store: subject keys → attribute values under ``mapping``."""
        return FactSet(keys=self.keys, values=self.values, mapping=self.mapping if mapping is None else mapping)

    def template_ids(self, template: int, subject: int, attribute: int) -> list[int]:
        word = {w: i for i, w in enumerate(self.words)}
        return [int(self.subject_token(subject)) if t == S else int(self.attribute_token(attribute)) if t == A
                else word[t] for t in self.templates[template]]


def make_task(num_facts: int = 512, num_attributes: int = 0, d: int = 64, seed: int = 0, *,
              num_edit_templates: int = 6, num_filler_words: int = 32, filler_length: int = 12,
              filler_branching: int = 3, word_fact_embeddings: str = "random") -> FactTask:
    """Build a task. ``num_attributes`` 0 means as many authors as books (the map is then a permutation).

    Subject keys and attribute values are independent spherical tables (as an LM's input and output
    embeddings are). ``word_fact_embeddings``: 'random' gives every word a random spherical fact
    embedding too (so the MLP sees junk inputs wherever attention does not find a subject), 'zero'
    gives words none. Filler: a Markov chain where each word has ``filler_branching`` likely
    successors (sparse, so filler is predictable and its perplexity is meaningful).
    """
    num_attributes = num_attributes or num_facts
    if num_facts < 2 or num_attributes < 2:
        raise ValueError(f"need at least 2 facts and 2 attributes, got {num_facts} and {num_attributes}")
    if not 1 <= num_edit_templates < len(TEMPLATES):
        raise ValueError(f"num_edit_templates must be in [1, {len(TEMPLATES) - 1}] so paraphrases remain, "
                         f"got {num_edit_templates}")
    if word_fact_embeddings not in ("random", "zero"):
        raise ParamError("word_fact_embeddings", f"got {word_fact_embeddings!r}; allowed: random, zero")
    rng = {k: np.random.default_rng([seed, i]) for i, k in enumerate(("keys", "values", "map", "split", "filler", "words"))}
    template_words = sorted({w for t in TEMPLATES for w in t if w not in (S, A)} - {END})
    fillers = [f"w{i}" for i in range(num_filler_words)]
    words = (BOS, END, *template_words, *fillers)
    keys = unit_rows(rng["keys"].standard_normal((num_facts, d)))
    values = unit_rows(rng["values"].standard_normal((num_attributes, d)))
    # Every author gets books as evenly as possible; a permutation when there are as many authors as books.
    mapping = rng["map"].permutation(num_facts) % num_attributes
    order = rng["split"].permutation(len(TEMPLATES))
    edit, para = sorted(order[:num_edit_templates].tolist()), sorted(order[num_edit_templates:].tolist())
    branching = min(filler_branching, num_filler_words)
    transitions = np.zeros((num_filler_words, num_filler_words))
    for i in range(num_filler_words):
        nxt = rng["filler"].choice(num_filler_words, size=branching, replace=False)
        transitions[i, nxt] = rng["filler"].dirichlet(np.ones(branching))
    word_emb = (unit_rows(rng["words"].standard_normal((len(words), d))) if word_fact_embeddings == "random"
                else np.zeros((len(words), d)))
    return FactTask(words=words, keys=keys, values=values, mapping=mapping, edit_templates=tuple(edit),
                    paraphrase_templates=tuple(para), filler_start=len(words) - num_filler_words,
                    filler_transitions=transitions, filler_length=filler_length, word_fact_embeddings=word_emb,
                    seed=seed)


@dataclass(frozen=True)
class Batch:
    """Token ids (B×T), the index of the position that *predicts* the attribute, and its fact/template."""

    tokens: np.ndarray
    query_pos: np.ndarray
    fact: np.ndarray
    template: np.ndarray


def _filler(task: FactTask, rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """``rows`` independent filler runs of ``n`` tokens each, a random start then the Markov chain."""
    cum = np.cumsum(task.filler_transitions, axis=1)
    out = np.empty((rows, n), dtype=np.int64)
    state = rng.integers(len(cum), size=rows)
    for t in range(n):
        out[:, t] = state
        u = rng.random(rows)[:, None]
        state = np.minimum((cum[state] < u).sum(axis=1), len(cum) - 1)
    return out + task.filler_start


def render(task: FactTask, facts, templates, rng: np.random.Generator, mapping: np.ndarray | None = None) -> Batch:
    """One sequence per (fact, template): BOS, filler, the fact sentence, '.', filler, all of length seq_len.

    The filler before the sentence has a random length, the rest goes after it.
    """
    mapping = task.mapping if mapping is None else mapping
    end = task.words.index(END)
    facts, templates = np.asarray(facts), np.asarray(templates)
    filler = _filler(task, rng, len(facts), task.seq_len - 1)
    rows, query = [], []
    for r, (i, t) in enumerate(zip(facts.tolist(), templates.tolist())):
        sentence = task.template_ids(t, i, int(mapping[i])) + [end]
        before = int(rng.integers(task.filler_length + 1))
        after = task.seq_len - 1 - before - len(sentence)
        rows.append([0] + filler[r, :before].tolist() + sentence + filler[r, before:before + after].tolist())
        query.append(before + len(sentence) - 2)  # the position just before the attribute token
    return Batch(tokens=np.array(rows), query_pos=np.array(query), fact=facts, template=templates)


def sample(task: FactTask, rng: np.random.Generator, batch: int, templates: tuple[int, ...] | None = None,
           mapping: np.ndarray | None = None) -> Batch:
    """A random batch of facts, each rendered by a random template of ``templates`` (default: all)."""
    templates = tuple(range(len(task.templates))) if templates is None else templates
    facts = rng.integers(task.num_facts, size=batch)
    chosen = np.asarray(templates)[rng.integers(len(templates), size=batch)]
    return render(task, facts, chosen, rng, mapping)


def non_fact_mask(task: FactTask, tokens: np.ndarray) -> np.ndarray:
    """True at positions t whose *next* token (the target) is neither a subject nor an attribute."""
    targets = tokens[:, 1:]
    mask = targets < task.num_words
    return np.concatenate([mask, np.zeros((len(tokens), 1), dtype=bool)], axis=1)
