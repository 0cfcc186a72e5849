"""Chunking-independent relevance rule: does a passage contain enough of an evidence quote?

A passage counts as relevant to an evidence quote when, after both are normalised
the same way, the passage holds a contiguous run of at least ``ceil(threshold * n)``
of the quote's ``n`` words. Because the rule looks only at passage text, it scores
any chunking strategy against the same gold quotes.
"""

import html
import math
import re
import unicodedata
from collections.abc import Sequence

# Inline tags sit inside words ("H<sub>2</sub>O"), so removing them must not split
# the word; every other tag (p, div, td, br, ...) separates text.
_INLINE_TAGS = frozenset(
    "a abbr b bdi bdo cite code del dfn em font i ins kbd mark q s samp small span "
    "strike strong sub sup time tt u var wbr".split()
)
# Requiring a letter, "/" or "!" after "<" keeps comparisons such as "p<0.05 and n>10"
# in scientific text from being mistaken for a tag.
_TAG_RE = re.compile(r"<(?:/?([A-Za-z][A-Za-z0-9]*)|!)[^>]*>")

_QUOTE_DASH_TABLE = str.maketrans(
    {
        **dict.fromkeys("‘’‚‛′", "'"),
        **dict.fromkeys("“”„″", '"'),
        **dict.fromkeys("‐‑‒–—―−", "-"),
    }
)

_MD_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~>])")
_MD_HEADING_RE = re.compile(r"^[ \t]{0,3}#{1,6}(?=[ \t]|$)", re.MULTILINE)
# Runs like "**MEETING****HEALTH**" come from adjacent bold blocks; the run between
# them marks a block boundary, so it becomes a space rather than gluing the words.
_MD_LONG_RUN_RE = re.compile(r"\*{4,}|_{4,}")
# Underscores inside words (snake_case, file_name) are content, not emphasis.
_MD_UNDERSCORE_RE = re.compile(r"(?<![^\W_])_+|_+(?![^\W_])")
_WHITESPACE_RE = re.compile(r"\s+")

# Marks that signal quantities or names ("46%", "#3", "AT&T") survive at word ends;
# other punctuation there is sentence furniture.
_KEEP_AT_EDGES = frozenset("%‰#&@")
_STRIP_SYMBOLS = frozenset("`^|~<>=")


def _strip_tag(match: re.Match[str]) -> str:
    name = (match.group(1) or "").lower()
    return "" if name in _INLINE_TAGS else " "


def normalise(text: str) -> str:
    """Fold markup, typography and case so that equal prose compares equal.

    HTML tags are removed before entities are unescaped, so an escaped ``&lt;p&gt;``
    in the text survives as ``<p>`` rather than being treated as markup.

    Args:
        text: Raw passage or quote text (plain, markdown or HTML fragments).

    Returns:
        Lower-cased text with curly quotes and dashes folded to ASCII, HTML tags,
        entities and markdown emphasis/heading marks removed, and whitespace
        collapsed to single spaces.
    """
    text = _TAG_RE.sub(_strip_tag, text)
    text = html.unescape(text).replace("\xa0", " ")
    text = text.lower().translate(_QUOTE_DASH_TABLE)
    text = _MD_ESCAPE_RE.sub(r"\1", text)
    text = _MD_HEADING_RE.sub("", text)
    text = _MD_LONG_RUN_RE.sub(" ", text)
    # A literal asterisk is removed too; that is harmless because both sides of
    # every comparison go through this same function.
    text = text.replace("*", "")
    text = _MD_UNDERSCORE_RE.sub("", text)
    return _WHITESPACE_RE.sub(" ", text).strip()


def _is_edge_punct(ch: str) -> bool:
    if ch in _KEEP_AT_EDGES:
        return False
    return ch in _STRIP_SYMBOLS or unicodedata.category(ch).startswith("P")


def _strip_edges(word: str) -> str:
    start, end = 0, len(word)
    while start < end and _is_edge_punct(word[start]):
        start += 1
    while end > start and _is_edge_punct(word[end - 1]):
        end -= 1
    return word[start:end]


def words(text: str) -> list[str]:
    """Split text into normalised words for matching.

    Args:
        text: Raw text; it is passed through :func:`normalise` first.

    Returns:
        Words with punctuation stripped from both ends (inner punctuation such as
        ``2017/18`` or ``£1.5m`` is kept, as are ``%``, ``#``, ``&`` and ``@``);
        words that were only punctuation are dropped.
    """
    out = []
    for raw in normalise(text).split(" "):
        word = _strip_edges(raw)
        if word:
            out.append(word)
    return out


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")


def _required_run(n_words: int, threshold: float) -> int:
    # The epsilon stops float error (0.7 * 10 == 7.000000000000001) from
    # demanding one word more than the rule intends.
    return max(1, math.ceil(threshold * n_words - 1e-9))


def _evidence_words(evidence: str) -> list[str]:
    ev = words(evidence)
    if not ev:
        raise ValueError(f"evidence quote has no words after normalisation: {evidence!r}")
    return ev


# Longest-common-substring DP over words with a rolling row. Only cells where the
# two words are equal are non-zero, so each row is a sparse dict keyed by evidence
# position: cost follows the number of matching word pairs, not len(e) * len(p),
# which matters when every query is checked against a hundred long passages.
def _has_common_run(evidence: list[str], passage: list[str], needed: int) -> bool:
    if needed > len(passage):
        return False
    positions: dict[str, list[int]] = {}
    for i, word in enumerate(evidence):
        positions.setdefault(word, []).append(i)
    prev: dict[int, int] = {}
    for word in passage:
        cur: dict[int, int] = {}
        for i in positions.get(word, ()):
            run = prev.get(i - 1, 0) + 1
            if run >= needed:
                return True
            cur[i] = run
        prev = cur
    return False


def _prepared_evidences(evidences: Sequence[str], threshold: float) -> list[tuple[list[str], int]]:
    if isinstance(evidences, str):
        raise TypeError("evidences must be a sequence of quotes, not a single string")
    if not evidences:
        raise ValueError("at least one evidence quote is required")
    _check_threshold(threshold)
    prepared = []
    for evidence in evidences:
        ev = _evidence_words(evidence)
        prepared.append((ev, _required_run(len(ev), threshold)))
    return prepared


def is_relevant(passage: str, evidence: str, threshold: float = 0.6) -> bool:
    """Decide whether a passage contains enough of one evidence quote.

    Args:
        passage: Retrieved passage text.
        evidence: Gold evidence quote.
        threshold: Fraction of the quote's words, in (0, 1], that must appear as
            one contiguous run in the passage.

    Returns:
        True when the longest common contiguous word sequence between the quote
        and the passage has at least ``ceil(threshold * n)`` words, where ``n`` is
        the number of words in the quote.

    Raises:
        ValueError: If the quote has no words or the threshold is out of range.
    """
    _check_threshold(threshold)
    ev = _evidence_words(evidence)
    return _has_common_run(ev, words(passage), _required_run(len(ev), threshold))


def relevant_any(passage: str, evidences: Sequence[str], threshold: float = 0.6) -> bool:
    """Decide whether a passage is relevant to at least one evidence quote.

    Args:
        passage: Retrieved passage text.
        evidences: Gold evidence quotes; at least one.
        threshold: As for :func:`is_relevant`.

    Returns:
        True when :func:`is_relevant` holds for any of the quotes.

    Raises:
        ValueError: If there are no quotes, a quote has no words, or the
            threshold is out of range.
        TypeError: If ``evidences`` is a single string rather than a sequence.
    """
    prepared = _prepared_evidences(evidences, threshold)
    pw = words(passage)
    return any(_has_common_run(ev, pw, needed) for ev, needed in prepared)


def first_relevant_rank(
    passages: Sequence[str], evidences: Sequence[str], threshold: float = 0.6
) -> int | None:
    """Find the rank of the first passage relevant to any evidence quote.

    Args:
        passages: Ranked passages, best first.
        evidences: Gold evidence quotes; at least one.
        threshold: As for :func:`is_relevant`.

    Returns:
        The 1-based rank of the first relevant passage, or None if none is.

    Raises:
        ValueError: If there are no quotes, a quote has no words, or the
            threshold is out of range.
        TypeError: If ``passages`` or ``evidences`` is a single string.
    """
    if isinstance(passages, str):
        raise TypeError("passages must be a sequence of passages, not a single string")
    prepared = _prepared_evidences(evidences, threshold)
    for rank, passage in enumerate(passages, start=1):
        pw = words(passage)
        if any(_has_common_run(ev, pw, needed) for ev, needed in prepared):
            return rank
    return None
