"""Answer normalisers (callwise.core.normalise): each normaliser on hand-made cases and on literal answer
strings copied from the MoT-cascade sample files (shared/data/mot-cascade-samples), user functions,
the unknown-name error and normalise_array on arrays with None and NaN."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from callwise.core.errors import PolicyError
from callwise.core.normalise import (
    NORMALISERS,
    choice,
    date,
    get_normaliser,
    normalise_array,
    number,
    text,
)

# -- number -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("$1,234.50 dollars", "1234.5"),
    ("18.0", "18"),
    (18.0, "18"),
    (7, "7"),
    ("-3.50", "-3.5"),
    ("1/2", "0.5"),
    ("The answer is 42.", "42"),
    (0.1 + 0.2, "0.3"),
    ("50%", "50"),
    ("x = -3", "-3"),
    ("5-3", "3"),                 # a range or a subtraction, not a negative number
    ("-$5", "-5"),
    ("$-5", "-5"),
    ("1.5e-3", "0.0015"),
    ("2.5E+3", "2500"),
    ("007", "7"),
    (".5", "0.5"),
    ("first 3 then 4 apples", "4"),  # the last number
    ("1,2,3", "3"),
    ("12345678901234567890123", "12345678901234567890123"),  # exact, not through a float
    (np.float64(2.0), "2"),
    (np.int64(-3), "-3"),
    (1e-7, "1e-07"),
    (float("inf"), None),
    (float("nan"), None),
    (None, None),
    (True, None),
    (np.bool_(False), None),
    ("no number here", None),
    ("", None),
    ("1/0", None),
    ([1, 2], None),
])
def test_number(value, expected):
    assert number(value) == expected


@pytest.mark.parametrize("value, expected", [
    # GPT-4 GSM8K / ASDiv / TabMWP `results` and Llama-2 GSM8K program outputs, verbatim
    ("81,444.31", "81444.31"),
    ("7,425", "7425"),
    (25.499999999999996, "25.5"),
    (10541.520000000002, "10541.52"),
    (109.00000000000001, "109"),
    (64424509459.99999, "64424509460"),
    (85899347600.0, "85899347600"),
    (0.44999999999999996, "0.45"),
    (0.45, "0.45"),
    (2.333333333333334, "2.33333333"),
    (22.666666666666668, "22.6666667"),
    (-6.0, "-6"),
    ("2154 miles", "2154"),
    ("3 minutes", "3"),
    ("14/82", number("7/41")),    # TabMWP fractions equal in value are one answer
    ("1000/5330", number("100/533")),
    ("Jane still has -2224 eggs left.", "-2224"),
    # the last number rule, on a real GPT-4 ASDiv answer
    ("4 (with 2 extra dogs)", "2"),
    ("To answer this question we need to know how many Lemon Heads Ann initially had. Please provide the "
     "initial number of Lemon Heads Ann had.", None),
])
def test_number_on_real_answers(value, expected):
    assert number(value) == expected


def test_number_is_idempotent():
    for v in ["$1,234.50", 0.1 + 0.2, "1/3", 1e-7, "-0.0", 2.333333333333334, "12345678901234567890123"]:
        once = number(v)
        assert number(once) == once


def test_number_rounding_merges_float_noise_but_keeps_distinct_values():
    assert number(0.1 + 0.2) == number(0.3) == number("0.30")
    assert number(2.333333333) == number(7 / 3)
    assert number(1.5) != number(1.51)
    assert number("-0") == number(0.0) == "0"


# -- choice -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("(B)", "B"),
    ("B.", "B"),
    ("b", "B"),
    (" c ", "C"),
    ("[d]", "D"),
    ("Answer: (c)", "C"),
    ("Answer: B", "B"),
    ("The answer is (C) because", "C"),
    ("The correct answer is D.", "D"),
    ("the answer is a", "A"),
    ("C) blue", "C"),
    ("e. none of the above", "E"),
    ("I pick (J) over (A), so the answer is (B)", "B"),  # after "answer is" wins
    ("(A) and then finally (H) apply", "A"),             # a leading "(A)" label
    ("It is clearly (H) here", "H"),
    ("the answer is a bit unclear", None),               # "a" as a word, not a letter
    ("I think so", None),
    ("K", None),                                         # A-J only
    ("", None),
    (None, None),
    (3, None),
])
def test_choice(value, expected):
    assert choice(value) == expected


# -- date -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("5/1/2021", "05/01/2021"),
    ("05-01-2021", "05/01/2021"),
    ("05.01.2021", "05/01/2021"),
    ("2021-05-01", "05/01/2021"),
    ("May 1, 2021", "05/01/2021"),
    ("1 May 2021", "05/01/2021"),
    ("the 1st of May, 2021", "05/01/2021"),
    ("Sept. 5th, 2020", "09/05/2020"),
    ("Sorry, ... The answer would be 05/01/2021.", "05/01/2021"),
    ("Yesterday was 04/30/2021, so today is 05/01/2021", "05/01/2021"),  # the last date
    ("13/01/2021", None),       # month 13
    ("01/32/2021", None),       # day 32
    ("5/1/21", None),           # two-digit years are not read
    ("Mayday 1, 2021", None),
    ("no date", None),
    (None, None),
    (20210501, None),
    (dt.date(2021, 5, 1), "05/01/2021"),
])
def test_date(value, expected):
    assert date(value) == expected


@pytest.mark.parametrize("value, expected", [
    # GPT-3.5-turbo DATE answers (refusals that still name a date), verbatim
    ('Sorry, there seems to be an error in the question. If yesterday was April 30, 2021, then the question '
     'should be "What is the date today in MM/DD/YYYY?" The answer would be 05/01/2021.', "05/01/2021"),
    ("I'm sorry, but the question is asking for the date yesterday, which was April 30, 2021. If you meant to "
     "ask for the date one day before yesterday, the answer would be April 29, 2021.", "04/29/2021"),
    ("I'm sorry, but the question is asking for the date yesterday, which was April 30, 2021. There is no date "
     "before that.", "04/30/2021"),
    ("Explain: If the deadline is Jun 1, 2021, which is 2 days away from now, then we need to add 2 days to the "
     "deadline to get today's date.\nTherefore, today's date is May 30, 2021, which is written as 05/30/2021 in "
     "MM/DD/YYYY format.", "05/30/2021"),
    ("Explain: Tomorrow is 11/12/2019. The date tomorrow will be 11/13/2019.", "11/13/2019"),
    ("11/11/2019.", "11/11/2019"),
    ("Sorry, there seems to be an error in the question. Yesterday cannot be April 30, 2021 as today is May 1, "
     "2021. Please provide a valid question.", "05/01/2021"),
    ("02/28/YYYY (depending on the current year)", None),
    ("I apologize, this is an invalid question as it refers to a future date.", None),
    ("25/01/1987", None),       # day/month order: month 25 is invalid
    # Llama-2-13B DATE answers, verbatim
    ("5/1/2021", "05/01/2021"),
    ("4/22/2021", "04/22/2021"),
    ("May 01, 2020\n", "05/01/2020"),
    ("April 22, 2021", "04/22/2021"),
    ("05/02/2021\n", "05/02/2021"),
    ("04/30/2021\n\n### 3rd Question\n\n[link](3rd_question.md)", "04/30/2021"),
    ("04/22/2021\n'''\n\n# part 2", "04/22/2021"),
    ("12/3/19", None),
    ("20191129", None),
    ("2019", None),
    ("178 days later", None),
])
def test_date_on_real_answers(value, expected):
    assert date(value) == expected


def test_date_is_idempotent():
    for v in ["5/1/2021", "May 1, 2021", "2021-12-31"]:
        assert date(date(v)) == date(v)


# -- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("  Less likely. ", "less likely"),
    ("less likely.", "less likely"),            # Llama-2-13B CREPE, verbatim
    ("more likely", "more likely"),
    ("yes", "yes"),
    ("No!", "no"),
    ('"Yes."', "yes"),
    ("'less likely'", "less likely"),
    ("\u201cmore likely\u201d,", "more likely"),
    ("Web   Page\nDesign class", "web page design class"),
    ("3:15 P.M.", "3:15 p.m"),
    ("don't", "don't"),
    ("", None),
    ("  .  ", None),
    (None, None),
    (float("nan"), None),
    (18.0, "18.0"),
    (7, "7"),
    (True, "true"),
])
def test_text(value, expected):
    assert text(value) == expected


def test_text_is_idempotent():
    for v in ["  Less likely. ", '"Yes."', "3:15 P.M."]:
        assert text(text(v)) == text(v)


def test_none_normaliser_keeps_strings_as_they_are():
    f = NORMALISERS["none"]
    assert f(" Yes. ") == " Yes. "
    assert f(18.0) == "18.0"
    assert f(None) is None and f(float("nan")) is None and f("") is None


# -- resolution and arrays --------------------------------------------------------------------


def test_names_resolve_to_the_functions():
    assert set(NORMALISERS) == {"number", "choice", "date", "text", "none"}
    for name, fn in NORMALISERS.items():
        assert get_normaliser(name) is fn


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(PolicyError) as e:
        get_normaliser("numbers")
    msg = str(e.value)
    assert "'numbers'" in msg
    for name in NORMALISERS:
        assert name in msg
    with pytest.raises(PolicyError, match="function"):
        get_normaliser(42)  # type: ignore[arg-type]


def test_user_function_results_are_coerced_to_str():
    calls = []

    def first_word(x):
        calls.append(x)
        w = str(x).split()
        return len(w[0]) if w else None

    f = get_normaliser(first_word)
    assert f("hello world") == "5"
    assert f("   ") is None
    assert f(None) is None and f(float("nan")) is None  # missing values never reach the function
    assert calls == ["hello world", "   "]


def test_user_function_error_names_the_value():
    def boom(x):
        raise ValueError("no")

    with pytest.raises(PolicyError, match=r"boom failed on 'x'"):
        get_normaliser(boom)("x")


def test_normalise_array_2d_with_none_and_nan():
    values = np.array([["18.0", None, 18.0, "$18"],
                       [float("nan"), 7, True, "seven"]], dtype=object)
    out = normalise_array(values, "number")
    assert out.shape == values.shape and out.dtype == object
    assert out.tolist() == [["18", None, "18", "18"], [None, "7", None, None]]
    # text reads 1, 1.0 and True apart although they compare equal
    out = normalise_array(np.array([[1, 1.0, True, np.nan]], dtype=object), "text")
    assert out.tolist() == [["1", "1.0", "true", None]]


def test_normalise_array_calls_once_per_distinct_value():
    seen = []

    def f(x):
        seen.append(x)
        return x.upper()

    values = np.array([["a", "b", "a"], ["a", None, "b"], ["c", np.nan, "a"]], dtype=object)
    out = normalise_array(values, f)
    assert out.tolist() == [["A", "B", "A"], ["A", None, "B"], ["C", None, "A"]]
    assert sorted(seen) == ["a", "b", "c"]


def test_normalise_array_shapes_and_inputs():
    assert normalise_array([], "text").shape == (0,)
    assert normalise_array(np.empty((2, 0), dtype=object), "text").shape == (2, 0)
    assert normalise_array(np.array(["May 1, 2021", "5/1/2021"]), "date").tolist() == ["05/01/2021"] * 2
    cube = normalise_array(np.full((2, 3, 4), "(B)", dtype=object), "choice")
    assert cube.shape == (2, 3, 4) and set(cube.ravel()) == {"B"}
    # unhashable values do not break it
    ragged = np.empty(3, dtype=object)
    ragged[:] = [[1], "2", None]
    assert normalise_array(ragged, "number").tolist() == [None, "2", None]


def test_normalise_array_unknown_name():
    with pytest.raises(PolicyError, match="unknown answer normaliser"):
        normalise_array(["a"], "nope")
