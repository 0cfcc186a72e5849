import pytest

from evals.relevance import first_relevant_rank, is_relevant, normalise, relevant_any, words

TEN = "one two three four five six seven eight nine ten"


def test_exact_match_is_relevant():
    quote = "The Board RESOLVED to note the report."
    assert is_relevant("Minutes. The Board RESOLVED to note the report. Item 5.", quote)


def test_quote_split_across_two_passages():
    # 10-word quote; first passage holds words 1-7 (70%), second holds 8-10 (30%).
    passage_a = "Preamble text. one two three four five six seven"
    passage_b = "eight nine ten. Then the next agenda item."
    assert is_relevant(passage_a, TEN)
    assert not is_relevant(passage_b, TEN)
    assert first_relevant_rank([passage_b, passage_a], [TEN]) == 2


def test_sixty_percent_boundary():
    # ceil(0.6 * 10) = 6 contiguous words needed.
    assert is_relevant("x one two three four five six y", TEN)
    assert not is_relevant("x one two three four five y", TEN)


def test_boundary_not_broken_by_float_error():
    # 0.7 * 10 is 7.000000000000001 in floating point; 7 words must still suffice.
    assert is_relevant("one two three four five six seven", TEN, threshold=0.7)
    assert not is_relevant("one two three four five six", TEN, threshold=0.7)


def test_short_quote_needs_rounded_up_run():
    # 3-word quote: ceil(1.8) = 2 contiguous words.
    assert is_relevant("we agreed funding", "agreed funding today")
    assert not is_relevant("agreed and funding", "agreed funding today")


def test_longest_run_not_sum_of_runs():
    # Two separate 4-word runs (8 of 10 words) do not make a 6-word run.
    passage = "one two three four BREAK seven eight nine ten"
    assert not is_relevant(passage, TEN)


def test_wrong_order_not_contiguous():
    reversed_quote = "ten nine eight seven six five four three two one"
    assert not is_relevant(reversed_quote, TEN)
    shuffled = "one three two five four seven six nine eight ten"
    assert not is_relevant(shuffled, TEN)


def test_markdown_bold_folds():
    assert normalise("**RESOLVED**") == "resolved"
    assert is_relevant("The Board **RESOLVED** that the plan be approved", "the board resolved that the plan be approved")


def test_markdown_headings_emphasis_and_escapes():
    assert normalise("## Item 4: _Budget_ \\*update\\*") == "item 4: budget update"
    assert normalise("snake_case stays") == "snake_case stays"
    assert normalise("__init__") == "init"


def test_adjacent_bold_blocks_do_not_glue_words():
    assert words("**MEETING****HEALTH BOARD**") == ["meeting", "health", "board"]


def test_html_tags_and_entities():
    assert normalise("<p>text</p>") == "text"
    assert normalise("<p>one</p><p>two</p>") == "one two"
    assert normalise("H<sub>2</sub>O") == "h2o"
    assert normalise("Health &amp; Wellbeing&nbsp;Board") == "health & wellbeing board"
    assert is_relevant("<p>Health &amp; Wellbeing Board</p>", "health & wellbeing board")


def test_comparisons_are_not_tags():
    assert words("p<0.05 and n>10") == ["p<0.05", "and", "n>10"]


def test_curly_quotes_fold():
    assert normalise("“x”") == normalise('"x"') == '"x"'
    assert normalise("children’s") == "children's"
    assert is_relevant("Barnet’s care leavers’ group", "Barnet's care leavers' group")


def test_dashes_fold():
    assert normalise("a – b — c") == "a - b - c"
    assert normalise("2017–18") == "2017-18"
    assert is_relevant("Head of Governance – Andrew", "Head of Governance - Andrew")


def test_words_keep_inner_punctuation():
    assert words("In 2017/18, spend was £1.5m (up 46%).") == ["in", "2017/18", "spend", "was", "£1.5m", "up", "46%"]
    assert words(" -- ... ") == []


def test_whitespace_collapses():
    assert normalise("  a\t\nb   c \xa0 d ") == "a b c d"


def test_empty_evidence_raises():
    with pytest.raises(ValueError):
        is_relevant("anything", "")
    with pytest.raises(ValueError):
        is_relevant("anything", " ** -- ")


def test_bad_threshold_raises():
    with pytest.raises(ValueError):
        is_relevant("a b", "a b", threshold=0)
    with pytest.raises(ValueError):
        is_relevant("a b", "a b", threshold=1.5)


def test_empty_passage_not_relevant():
    assert not is_relevant("", "some quote")


def test_relevant_any():
    assert relevant_any("one two three four five six", ["nothing here at all", TEN])
    assert not relevant_any("one two three", ["nothing here at all", TEN])
    with pytest.raises(ValueError):
        relevant_any("x", [])
    with pytest.raises(TypeError):
        relevant_any("x", "a single string")


def test_first_relevant_rank():
    passages = ["unrelated", "one two three", "one two three four five six", TEN]
    assert first_relevant_rank(passages, [TEN]) == 3
    assert first_relevant_rank(["unrelated"], [TEN]) is None
    assert first_relevant_rank([], [TEN]) is None


def test_repetitive_long_passage():
    # Dense worst case for the DP: every evidence word matches half the passage.
    evidence = " ".join(["a"] * 60)
    assert not is_relevant(" ".join(["a", "b"] * 1000), evidence)
    assert is_relevant(" ".join(["b"] * 1000 + ["a"] * 36), evidence)
    assert not is_relevant(" ".join(["b"] * 1000 + ["a"] * 35), evidence)
