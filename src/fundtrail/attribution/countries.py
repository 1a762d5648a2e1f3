"""Country names as sanctions lists write them -> ISO 3166 alpha-2, and sanctions programs -> country."""

from __future__ import annotations

import re

COUNTRY_CODES: dict[str, str] = {
    "afghanistan": "AF", "albania": "AL", "algeria": "DZ", "argentina": "AR", "armenia": "AM",
    "australia": "AU", "austria": "AT", "azerbaijan": "AZ", "bahrain": "BH", "bangladesh": "BD",
    "belarus": "BY", "belgium": "BE", "belize": "BZ", "bolivia": "BO", "bosnia and herzegovina": "BA",
    "brazil": "BR", "british virgin islands": "VG", "virgin islands, british": "VG", "bulgaria": "BG",
    "burma": "MM", "myanmar": "MM", "cambodia": "KH", "canada": "CA", "cayman islands": "KY", "chile": "CL",
    "china": "CN", "colombia": "CO", "costa rica": "CR", "croatia": "HR", "cuba": "CU", "cyprus": "CY",
    "czech republic": "CZ", "czechia": "CZ", "denmark": "DK", "dominican republic": "DO", "ecuador": "EC",
    "egypt": "EG", "estonia": "EE", "ethiopia": "ET", "finland": "FI", "france": "FR", "georgia": "GE",
    "germany": "DE", "ghana": "GH", "greece": "GR", "guatemala": "GT", "hong kong": "HK", "hungary": "HU",
    "india": "IN", "indonesia": "ID", "iran": "IR", "iraq": "IQ", "ireland": "IE", "israel": "IL",
    "italy": "IT", "japan": "JP", "jordan": "JO", "kazakhstan": "KZ", "kenya": "KE",
    "korea, north": "KP", "north korea": "KP", "democratic people's republic of korea": "KP",
    "korea, south": "KR", "south korea": "KR", "kosovo": "XK", "kuwait": "KW", "kyrgyzstan": "KG",
    "laos": "LA", "latvia": "LV", "lebanon": "LB", "libya": "LY", "liechtenstein": "LI", "lithuania": "LT",
    "luxembourg": "LU", "macau": "MO", "malaysia": "MY", "mali": "ML", "malta": "MT", "marshall islands": "MH",
    "mexico": "MX", "moldova": "MD", "monaco": "MC", "mongolia": "MN", "montenegro": "ME", "morocco": "MA",
    "netherlands": "NL", "new zealand": "NZ", "nicaragua": "NI", "nigeria": "NG", "north macedonia": "MK",
    "norway": "NO", "oman": "OM", "pakistan": "PK", "panama": "PA", "paraguay": "PY", "peru": "PE",
    "philippines": "PH", "poland": "PL", "portugal": "PT", "qatar": "QA", "romania": "RO", "russia": "RU",
    "russian federation": "RU", "saint kitts and nevis": "KN", "saudi arabia": "SA", "serbia": "RS",
    "seychelles": "SC", "singapore": "SG", "slovakia": "SK", "slovenia": "SI", "somalia": "SO",
    "south africa": "ZA", "south sudan": "SS", "spain": "ES", "sri lanka": "LK", "sudan": "SD",
    "sweden": "SE", "switzerland": "CH", "syria": "SY", "taiwan": "TW", "tajikistan": "TJ", "tanzania": "TZ",
    "thailand": "TH", "turkey": "TR", "turkiye": "TR", "türkiye": "TR", "turkmenistan": "TM", "uganda": "UG",
    "ukraine": "UA", "united arab emirates": "AE", "united kingdom": "GB", "united states": "US",
    "uruguay": "UY", "uzbekistan": "UZ", "vanuatu": "VU", "venezuela": "VE", "vietnam": "VN", "yemen": "YE",
    "zimbabwe": "ZW", "region: crimea": "UA", "crimea": "UA", "seychelles islands": "SC",
}

#: program (prefix) -> the country it targets; programs about an activity (CYBER, SDNTK, SDGT, GLOMAG,
#: ELECTION …) name no country.
PROGRAM_COUNTRY: tuple[tuple[str, str], ...] = (
    ("DPRK", "KP"), ("NKSPEA", "KP"), ("IRAN", "IR"), ("IRGC", "IR"), ("IFSR", "IR"), ("ISA", "IR"),
    ("RUSSIA", "RU"), ("UKRAINE-EO13685", "UA"), ("CUBA", "CU"), ("SYRIA", "SY"), ("VENEZUELA", "VE"),
    ("BELARUS", "BY"), ("BURMA", "MM"), ("CAR", "CF"), ("DRCONGO", "CD"), ("IRAQ", "IQ"), ("LEBANON", "LB"),
    ("LIBYA", "LY"), ("MALI", "ML"), ("NICARAGUA", "NI"), ("SOMALIA", "SO"), ("SOUTH SUDAN", "SS"),
    ("SUDAN", "SD"), ("YEMEN", "YE"), ("ZIMBABWE", "ZW"), ("BALKANS", "RS"), ("HONG KONG", "HK"),
)


def country_code(name: str | None) -> str | None:
    if not name:
        return None
    t = name.strip().lower()
    if len(t) == 2 and t.isalpha():
        return t.upper()
    return COUNTRY_CODES.get(t)


def program_country(programs: list[str]) -> str | None:
    for p in programs:
        up = p.strip().upper()
        for prefix, code in PROGRAM_COUNTRY:
            if up.startswith(prefix):
                return code
    return None


# Linear time on any input: the keyword is matched with a bounded gap, then the country is the text up to
# the next ';' (or the end), looked for within a bounded window with str.find, never by backtracking.
_NATIONALITY = re.compile(r"\b(?:nationality|citizen|Nationality of Registration)\s{1,8}(?=[A-Z])")
_COUNTRY_TEXT = re.compile(r"[A-Z][A-Za-z ,.'-]{0,79}")
_PAREN_COUNTRY = re.compile(r"\(([A-Z][A-Za-z .,'-]{0,79})\)")
_WINDOW = 80


def remarks_country(remarks: str) -> tuple[str | None, str | None]:
    """(nationality/citizenship country, a country named in parentheses e.g. a registration's) from remarks."""
    nat = None
    for m in _NATIONALITY.finditer(remarks):
        start = m.end()
        stop = remarks.find(";", start, start + _WINDOW + 1)
        if stop < 0:
            if len(remarks) - start > _WINDOW:
                continue
            stop = len(remarks)
        text = remarks[start:stop].rstrip("\n")
        if _COUNTRY_TEXT.fullmatch(text):
            nat = country_code(text)
            break
    reg = None
    for m in _PAREN_COUNTRY.finditer(remarks):
        c = country_code(m[1])
        if c:
            reg = c
            break
    return nat, reg
