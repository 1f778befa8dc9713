"""Every number the READMEs and the model card quote about vitviz-shapes and its evaluation comes from the data
(issue 23, item 6): generated blocks are up to date, and no percentage outside them is one the data lack."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import doc_numbers  # noqa: E402
import train_shapes  # noqa: E402
import train_shapes_cnn  # noqa: E402

from vitviz.evaluation.summary import END, START, render_markdown  # noqa: E402

CARD = ROOT / "docs" / "model_card.md"
EVALUATION = ROOT / "docs" / "evaluation.md"
SUMMARY = ROOT / "docs" / "evaluation" / "shapes-300" / "summary.json"
PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
BLOCKS = [(doc_numbers.START, doc_numbers.END), (START, END), (train_shapes.START, train_shapes.END),
          (train_shapes_cnn.START, train_shapes_cnn.END), ("<!-- hand-counted:start -->", "<!-- hand-counted:end -->")]


def _config() -> dict:
    return json.loads(doc_numbers.CONFIG.read_text(encoding="utf-8"))


def _inside(text: str, start: str, end: str) -> str:
    return "\n".join(re.findall(re.escape(start) + r"(.*?)" + re.escape(end), text, flags=re.S))


def _outside(text: str) -> str:
    for start, end in BLOCKS:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), " ", text, flags=re.S)
    return text


def _summary_block() -> str:
    summary = json.loads(SUMMARY.read_text(encoding="utf-8"))
    summary.setdefault("info", {})["summary_path"] = SUMMARY.relative_to(ROOT).as_posix()
    return render_markdown(summary)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_readme_sentence_about_the_bundled_model_is_written_from_its_metrics(lang):
    text = doc_numbers.READMES[lang].read_text(encoding="utf-8")
    assert doc_numbers.blocks(text) == [doc_numbers.render(_config(), lang)], "run python scripts/doc_numbers.py"
    assert not PERCENT.findall(_outside(text)), "every percentage of the README is in a generated block"


def test_the_quoted_facts_are_what_the_metrics_say():
    config = _config()
    metrics, native = config["metrics"], str(config["native_patch_size"])
    facts = doc_numbers.facts(config)
    assert facts["accuracy"] == str(round(100 * metrics["accuracy"][native]))
    held = [f["accuracy"][native] for f in metrics["families"].values() if f["held_out"]]
    assert len(held) == 2 and facts["held_out"].split("–")[0] == str(round(100 * min(held)))
    lowest = min(m["pointing"] for f in metrics["families"].values() for m in f["localisation"][native].values())
    assert int(facts["pointing"]) <= 100 * lowest < int(facts["pointing"]) + 1, "'at least' is a lower bound"


def test_the_model_cards_generated_sections_are_up_to_date():
    card = CARD.read_text(encoding="utf-8")
    assert _inside(card, train_shapes.START, train_shapes.END).strip() == train_shapes.results_markdown(
        _config()).strip(), "run python scripts/train_shapes.py --card-only"
    block = _summary_block()
    for page in (CARD, EVALUATION):
        assert _inside(page.read_text(encoding="utf-8"), START, END).strip() == block.strip(), (
            f"run python -m vitviz.evaluate --markdown {SUMMARY.parent.relative_to(ROOT)} --into {page.name}")


def _printed(text: str) -> set[tuple[float, int]]:
    """Every number printed in ``text`` with its number of decimals."""
    return {(float(n), len(n.partition(".")[2])) for n in re.findall(r"\d+(?:\.\d+)?", text)}


def _matches(value: str, printed: set[tuple[float, int]]) -> bool:
    """``value`` (as quoted) equals a printed number at the quoted precision (95% matches a printed 95.0%)."""
    decimals = len(value.partition(".")[2])
    return any(round(number, decimals) == float(value) and places >= decimals for number, places in printed)


def test_every_percentage_the_model_card_quotes_about_results_is_in_its_generated_sections():
    card = CARD.read_text(encoding="utf-8")
    results = card[card.index("## Results"): card.index("## Limitations")]
    printed = _printed("\n".join(_inside(card, start, end) for start, end in (
        (train_shapes.START, train_shapes.END), (train_shapes_cnn.START, train_shapes_cnn.END), (START, END))))
    quoted = PERCENT.findall(_outside(results))
    assert quoted, "the card's prose quotes results"
    missing = [value for value in quoted if not _matches(value, printed)]
    assert not missing, f"percentages the data do not hold: {missing}"


def test_a_number_the_data_lack_is_caught():
    printed = _printed("| 96.4% | 95.0% |")
    assert _matches("96.4", printed) and _matches("95", printed)
    assert not _matches("97", printed) and not _matches("96.5", printed)
