"""Personal data kept out of logs: addresses and phone numbers masked wherever text is logged.

Masked, an address still tells two customers apart (``a***@example.org``, ``+49***78``) and no
longer reaches anyone. The records on the topics keep them whole; only what is logged is masked.
"""

from __future__ import annotations

import re

# An email address; a number in E.164 form or as libphonenumber prints one (+1 650-253-0000).
_ADDRESS_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\+\d(?:[ -]?\d){6,16}")


def mask_addresses_in(text: str) -> str:
    """``text`` (a provider's error, say) with every email address and E.164 number masked."""
    return _ADDRESS_IN_TEXT.sub(lambda m: mask_address(m.group(0)), text)


def mask_address(address: str) -> str:
    """For logs: enough to tell addresses apart, not enough to contact anyone."""
    if "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    if len(address) > 6:
        return f"{address[:3]}***{address[-2:]}"
    return "***"
