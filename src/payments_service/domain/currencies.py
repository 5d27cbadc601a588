"""Active ISO 4217 alphabetic codes (List One), as an allow-list.

Source: ISO 4217 List One as maintained by SIX (the ISO 4217 maintenance agency), reviewed on
2026-11-25. It includes fund codes (e.g. BOV, CLF, USN) and the X-codes for supranational units
and precious metals, because they are active codes. Excluded on purpose:

- XTS (reserved for testing) and XXX ("no currency"): not something a payment can be made in;
- withdrawn codes: e.g. HRK (Croatia joined the euro in 2023), ZWL (replaced by ZWG in 2024),
  ANG (replaced by XCG in 2025), BGN (Bulgaria joined the euro in 2026), SLL, CUC, VEF, MRO, STD.

When ISO publishes an amendment, update this set and `tests/unit/test_currencies.py` together.
"""

from __future__ import annotations

# Kept as a block of text so it reads like the ISO table it copies.
_LIST_ONE = """
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP
PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP
SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV
WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG
"""

ACTIVE_CURRENCIES: frozenset[str] = frozenset(_LIST_ONE.split())
