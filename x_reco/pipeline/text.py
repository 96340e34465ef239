"""The one tokenizer for post text and muted keywords, and the keyword matcher (spec §8.1).

Posts and keywords go through the same ``tokenize``: NFKD, casefold, combining marks dropped (``café``
≡ ``cafe``), then tokens are runs of letters/digits/underscore; a ``#`` or ``@`` that starts a token is
kept on it as a marker (``#widget``, ``@user``); every other character separates tokens. CJK text has
no spaces, so a run of one CJK script (Han, Hiragana, Katakana, Hangul) is one token: ``東京都に行く``
is ``東京都 / に / 行 / く``, and ``京都`` never matches inside ``東京都`` [A viewer_muted_keyword_filter.rs].
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

# Kana voicing marks survive mark-dropping: が -> か + U+3099 under NFKD, and が is not か.
_KEEP_MARKS = frozenset("\u3099\u309a")
_HAN = "\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HIRAGANA = "\u3041-\u309f"
_KATAKANA = "\u30a0-\u30ff\u31f0-\u31ff"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_CJK = _HAN + _HIRAGANA + _KATAKANA + _HANGUL
# A marker counts only at a token start (not after a word character: "a#b" is "a", "#b" is not a tag).
_TOKEN = re.compile(
    rf"(?:(?<!\w)[#@])?(?:[^\W{_CJK}]+|[{_HAN}]+|[{_HIRAGANA}]+|[{_KATAKANA}]+|[{_HANGUL}]+)",
)
MARKERS = "#@"


def normalize(text: str) -> str:
    """NFKD + casefold with combining marks dropped, recomposed (NFC) so Hangul and kana stay whole."""
    if text.isascii():
        return text.lower()  # the same result, without three passes over the string
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    stripped = "".join(c for c in folded if not unicodedata.combining(c) or c in _KEEP_MARKS)
    return unicodedata.normalize("NFC", stripped)


@functools.lru_cache(maxsize=65_536)
def tokenize(text: str) -> tuple[str, ...]:
    """Tokens of ``text`` (§8.1): normalized words, ``#``/``@`` kept as a leading marker, CJK runs whole.

    Cached: the same post is tokenized once per process, however many requests retrieve it.
    """
    return tuple(_TOKEN.findall(normalize(text)))


def _token_matches(keyword_token: str, post_token: str) -> bool:
    """Plain ``w`` matches ``w``, ``#w``, ``@w``; ``#w`` only ``#w``; ``@w`` only ``@w`` (§8.1)."""
    if keyword_token[0] in MARKERS:
        return keyword_token == post_token
    return keyword_token == (post_token[1:] if post_token[0] in MARKERS else post_token)


class KeywordMatcher:
    """Muted keywords tokenized once; ``first_match(text)`` is the first keyword whose token sequence
    occurs contiguously in the text's tokens (§8.1), or None.

    A keyword that tokenizes to nothing (``"!!!"``, ``"#"``) never matches.
    """

    def __init__(self, keywords: Iterable[str]):
        self.keywords: tuple[str, ...] = tuple(keywords)
        self._sequences = [(kw, tokenize(kw)) for kw in self.keywords]
        self._sequences = [(kw, seq) for kw, seq in self._sequences if seq]

    def __bool__(self) -> bool:
        return bool(self._sequences)

    def first_match(self, text: str) -> str | None:
        tokens = tokenize(text)
        if not tokens:
            return None
        exact = set(tokens)
        bare = {t[1:] if t[0] in MARKERS else t for t in tokens}
        for keyword, seq in self._sequences:
            head = seq[0]
            if (head not in exact) if head[0] in MARKERS else (head not in bare):
                continue  # the first token appears nowhere: the common case, answered by one set lookup
            if len(seq) == 1 or self._occurs(seq, tokens):
                return keyword
        return None

    @staticmethod
    def _occurs(seq: tuple[str, ...], tokens: tuple[str, ...]) -> bool:
        k = len(seq)
        for start in range(len(tokens) - k + 1):
            if all(_token_matches(s, tokens[start + j]) for j, s in enumerate(seq)):
                return True
        return False


@functools.lru_cache(maxsize=1024)
def keyword_matcher(keywords: tuple[str, ...]) -> KeywordMatcher:
    """A cached ``KeywordMatcher`` per keyword list (a viewer's list is reused across their requests)."""
    return KeywordMatcher(keywords)
