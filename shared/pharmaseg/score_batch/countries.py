"""ISO 3166-1 alpha-3 country codes: what "a known country code" means in a features file.

A features row's country is valid when it is one of these codes (upper case), optionally
followed by ``:label`` to name a scenario for that country (``DEU:high-growth``). Anything else
(``XYZ``, ``Germany``, ``de``) is rejected with a reason naming the COUNTRY field.
"""

from __future__ import annotations

import re

ISO3166_ALPHA3: frozenset[str] = frozenset(
    """
    ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI BEL BEN BES BFA BGD BGR BHR BHS
    BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA CAF CAN CCK CHE CHL CHN CIV CMR COD COG COK COL COM CPV
    CRI CUB CUW CXR CYM CYP CZE DEU DJI DMA DNK DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM
    GAB GBR GEO GGY GHA GIB GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI HUN IDN IMN
    IND IOT IRL IRN IRQ ISL ISR ITA JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN LBR LBY LCA LIE
    LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL MKD MLI MLT MMR MNE MNG MNP MOZ MRT MSR MTQ MUS
    MWI MYS MYT NAM NCL NER NFK NGA NIC NIU NLD NOR NPL NRU NZL OMN PAK PAN PCN PER PHL PLW PNG POL PRI PRK
    PRT PRY PSE PYF QAT REU ROU RUS RWA SAU SDN SEN SGP SGS SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD STP SUR
    SVK SVN SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR TUV TWN TZA UGA UKR UMI URY
    USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE
    """.split()
)

_KEY = re.compile(r"^(?P<code>[A-Z]{3})(?::(?P<label>[^\x00-\x1f]{1,64}))?$")


def country_problem(value: str) -> str | None:
    """Why ``value`` is not a known country code (or ``CODE:scenario``), or None when it is."""
    text = value.strip()
    if not text:
        return "COUNTRY: missing value"
    match = _KEY.match(text)
    if not match:
        return f"COUNTRY: {value[:40]!r} is not an ISO 3166-1 alpha-3 code (optionally CODE:scenario)"
    if match["code"] not in ISO3166_ALPHA3:
        return f"COUNTRY: {match['code']!r} is not an ISO 3166-1 alpha-3 country code"
    return None
