"""The §8.1 tokenizer and keyword matcher: one tokenizer for posts and keywords, contiguous token
sequences, ``#``/``@`` markers, accents folded, CJK runs whole (京都 must not match inside 東京都)."""

from __future__ import annotations

import string
import unicodedata

import pytest

from x_reco.pipeline.text import KeywordMatcher, keyword_matcher, normalize, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Buy bitcoin! It's great!!!", ("buy", "bitcoin", "it", "s", "great")),
        ("(bitcoin is volatile)", ("bitcoin", "is", "volatile")),
        ("#LAUNCH day", ("#launch", "day")),
        ("Hey @exampleuser, check", ("hey", "@exampleuser", "check")),
        ("I love café culture", ("i", "love", "cafe", "culture")),
        ("STRASSE straße ﬁne", ("strasse", "strasse", "fine")),  # casefold and NFKD ligature
        ("a#b ##x @@y", ("a", "b", "#x", "@y")),  # a marker only starts a token
        ("東京都に行くのが楽しみ", ("東京都", "に", "行", "くのが", "楽", "しみ")),  # one token per script run
        ("I visited 京都 last week", ("i", "visited", "京都", "last", "week")),
        ("ガギグ 한국어", ("ガギグ", "한국어")),  # voiced kana and Hangul stay whole
        ("  ,;!  ", ()),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_voiced_kana_is_not_its_unvoiced_base():
    assert tokenize("が") != tokenize("か")


def _matches(keyword: str, texts: list[str]) -> list[bool]:
    matcher = KeywordMatcher([keyword])
    return [matcher.first_match(t) == keyword for t in texts]


def test_phrase_matches_only_contiguously():
    texts = ["This is a crypto scam warning", "crypto is great, scam artists are bad", "Crypto-scam!"]
    assert _matches("crypto scam", texts) == [True, False, True]


def test_plain_keyword_matches_word_hashtag_and_mention():
    texts = ["#widget launch event", "widget speaks at summit", "@widget hi", "widgets galore", "unrelated"]
    assert _matches("widget", texts) == [True, True, True, False, False]


def test_hashtag_keyword_matches_only_the_hashtag():
    assert _matches("#launch", ["#LAUNCH day", "support launch movement", "@launch"]) == [True, False, False]


def test_mention_keyword_matches_only_the_mention():
    assert _matches("@exampleuser", ["Hey @exampleuser", "exampleuser posted", "#exampleuser"]) == [True, False, False]


def test_accent_and_case_fold_both_ways():
    assert _matches("café", ["I love café culture", "I love CAFE culture", "coffee"]) == [True, True, False]
    assert _matches("cafe", ["Café au lait"]) == [True]
    assert _matches("SPAM", ["This is SpAm content"]) == [True]


def test_cjk_keyword_matches_whole_tokens_only():
    texts = ["東京都に行くのが楽しみ", "I visited 京都 last week", "京都、大阪"]
    assert _matches("京都", texts) == [False, True, True]
    assert _matches("東京都", texts) == [True, False, False]


def test_punctuation_separates_tokens():
    texts = ["Buy bitcoin! It's great!!!", "bitcoin, ethereum", "(bitcoin is volatile)", "stocks and bonds"]
    assert _matches("bitcoin", texts) == [True, True, True, False]


def test_first_match_returns_the_first_listed_keyword_that_matches():
    matcher = KeywordMatcher(["spam", "scam", "#blocked"])
    texts = ["This is spam content", "a scam alert", "#blocked user posting", "blocked user", "spam and scam"]
    assert [matcher.first_match(t) for t in texts] == ["spam", "scam", "#blocked", None, "spam"]


def test_keywords_that_tokenize_to_nothing_never_match():
    matcher = KeywordMatcher(["!!!", "#", ""])
    assert not matcher
    assert matcher.first_match("!!! # anything") is None


def test_keyword_matcher_is_cached_per_keyword_list():
    assert keyword_matcher(("a", "b")) is keyword_matcher(("a", "b"))


def test_ascii_fast_path_equals_the_unicode_path():
    text = string.printable
    reference = unicodedata.normalize("NFC", unicodedata.normalize("NFKD", text).casefold())
    assert normalize(text) == reference
