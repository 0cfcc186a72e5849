"""Splitting passages into the sentences the indexer embeds and the answerer quotes."""

from indexer.sentences import split


def _pieces(text: str, start: int = 0, end: int | None = None) -> list[str]:
    return [text[s:e] for s, e in split(text, start, len(text) if end is None else end)]


def test_sentence_ends_need_a_capital_digit_or_quote_after():
    text = "The board noted the report. It asked for an update in 6 months; 3 members agreed. e.g. this stays."
    assert _pieces(text) == ["The board noted the report.", "It asked for an update in 6 months;",
                             "3 members agreed. e.g. this stays."]


def test_lines_are_sentences_and_offsets_point_into_the_text():
    text = "HEADER\nIndicator\t59%\n\nNext row\t61%"
    spans = list(split(text, 7, len(text)))
    assert [text[s:e] for s, e in spans] == ["Indicator\t59%", "Next row\t61%"]
    assert spans[0][0] == 7


def test_empty_and_blank_ranges_give_nothing():
    assert _pieces("abc", 1, 1) == []
    assert _pieces("\n\n\n") == []
