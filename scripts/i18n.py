"""Keep the translation catalogues in step with the code (Babel).

    python scripts/i18n.py update          # re-extract every _()/N_()/ngettext() text; update each .po
    python scripts/i18n.py check           # list texts without a reviewed translation, or with lost placeholders
    python scripts/i18n.py stats           # how many texts each language has translated

``update`` keeps every existing translation, adds new texts with an empty translation, marks a changed text
``#, fuzzy`` with its old translation (a translator reviews it and removes the flag; fuzzy entries are not
used), and drops texts the code no longer has. Entries are ordered by the file that first uses them, without
line numbers, so that edits to different files touch different parts of a catalogue.
"""
from __future__ import annotations

import argparse
import re
import string
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("app.py", "pages", "vitviz_app", "vitviz")
"""Where user-facing texts live (the library's figures and messages, the app and its pages)."""
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
WIDTH = 100
HEADER = """\
# {language} translations of vitviz: the texts of the app, of vitviz's figures
# and of its messages. Updated from the code by `python scripts/i18n.py update`;
# the terms follow docs/glossary.md. A `#, fuzzy` entry is a changed text whose
# old translation needs review: it is not used until the flag is removed."""
LANGUAGE_NAMES = {"zh": "Chinese (Simplified)"}


def _python_files() -> list[Path]:
    files: list[Path] = []
    for source in SOURCES:
        path = ROOT / source
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
    return files


def extract():
    """A Babel catalogue of every text the code marks, in file order, with the files that use it."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract as extract_from

    template = Catalog(project="vitviz", domain="vitviz", fuzzy=False)
    for path in _python_files():
        with path.open("rb") as handle:
            for lineno, message, comments, context in extract_from("python", handle, keywords=KEYWORDS,
                                                                    comment_tags=("TRANSLATORS:",)):
                template.add(message, None, [(path.relative_to(ROOT).as_posix(), lineno)],
                             auto_comments=comments, context=context)
    return template


def languages() -> list[str]:
    from vitviz.i18n import DEFAULT_LANGUAGE, LANGUAGES

    return [code for code in LANGUAGES if code != DEFAULT_LANGUAGE]


def read(code: str):
    from babel.messages.pofile import read_po

    from vitviz.i18n import catalogue_path

    with catalogue_path(code).open("rb") as handle:
        return read_po(handle, locale=code, domain="vitviz")


def write(code: str, catalog) -> Path:
    from babel.messages.pofile import write_po

    from vitviz.i18n import catalogue_path

    path = catalogue_path(code)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=WIDTH, include_lineno=False, ignore_obsolete=True, omit_header=False)
    return path


def update() -> None:
    """Merge the code's texts into every language's catalogue."""
    from babel.messages.catalog import Catalog

    template = extract()
    for code in languages():
        try:
            catalog = read(code)
        except FileNotFoundError:
            catalog = Catalog(locale=code, project="vitviz", domain="vitviz")
        created = catalog.creation_date  # kept: a new date on every update would make every merge conflict
        catalog.update(template, update_header_comment=False)
        catalog.creation_date = created
        catalog.fuzzy = False  # the header is ours, not a guess
        catalog.header_comment = HEADER.format(language=LANGUAGE_NAMES.get(code, code))
        catalog.project, catalog.version = "vitviz", ""
        catalog.msgid_bugs_address = ""
        catalog.last_translator = catalog.language_team = "vitviz"
        path = write(code, catalog)
        print(f"{path.relative_to(ROOT)}: {len(catalog)} texts")


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +-]*\d*(?:\.\d+)?[sdifr%]")


def placeholders(text: str) -> list[str]:
    """The ``{name}`` fields (with their format specs) and ``%s``-style conversions of a text, sorted."""
    fields = [f"{{{name}{':' + spec if spec else ''}}}" for _, name, spec, _ in string.Formatter().parse(text)
              if name is not None]
    return sorted(fields + [m for m in _PERCENT.findall(text) if m != "%%"])


def _strings(message) -> list[tuple[str, str]]:
    ids = message.id if isinstance(message.id, (tuple, list)) else (message.id,)
    strs = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
    return [(ids[min(i, len(ids) - 1)], s) for i, s in enumerate(strs)]


def problems(code: str) -> list[str]:
    """Every text of the code that has no usable translation in ``code``'s catalogue, with the reason."""
    catalog = read(code)
    found: list[str] = []
    for message in extract():
        if not message.id:
            continue
        entry = catalog.get(message.id, context=message.context)
        shown = message.id if isinstance(message.id, str) else message.id[0]
        if entry is None:
            found.append(f"missing: {shown!r}")
        elif entry.fuzzy:
            found.append(f"fuzzy (unreviewed): {shown!r}")
        elif not all(s for _, s in _strings(entry)):
            found.append(f"untranslated: {shown!r}")
        else:
            for source, translated in _strings(entry):
                if placeholders(source) != placeholders(translated):
                    found.append(f"placeholders {placeholders(source)} became {placeholders(translated)}: "
                                 f"{shown!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("update", "check", "stats"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.command == "update":
        update()
        return 0
    status = 0
    for code in languages():
        found = problems(code)
        if args.command == "stats":
            total = sum(1 for m in extract() if m.id)
            print(f"{code}: {total - len(found)} of {total} texts translated")
        else:
            print("\n".join(f"{code}: {line}" for line in found) or f"{code}: every text is translated")
            status = status or int(bool(found))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
