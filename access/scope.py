"""Who is asking, and what they may see."""

from __future__ import annotations

from dataclasses import dataclass, field

CITY_CODE = "4101"


@dataclass(frozen=True)
class Scope:
    """A user's jurisdiction node (code prefix), department and role."""

    user: str
    jurisdiction: str = CITY_CODE  # 4 (city), 6 (county), 9, 12, 15 or 17 digits
    role: str = "city_commander"
    department: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)

    def sees(self, code: str | None) -> bool:
        """One-way visibility: the node itself and everything below it."""
        if not code:
            # An unlocated record belongs to the city level only.
            return self.jurisdiction == CITY_CODE
        return code.startswith(self.jurisdiction)


def demo_scope() -> Scope:
    """Until accounts exist, the embedded demo's screens act as the city commander."""
    return Scope(user="demo", jurisdiction=CITY_CODE, role="city_commander")
