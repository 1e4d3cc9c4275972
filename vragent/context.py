"""Facts about the running router that validation may consult (read once, then pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vragent.fields import Fields


@dataclass(frozen=True)
class Context:
    # NIC name -> MAC address, as observed. Empty means "unknown": device checks are skipped
    # (pure unit tests, or rendering for another machine).
    links: dict[str, str] = field(default_factory=dict)

    def check_device(self, device: str, item: Fields, key: str) -> bool:
        if self.links and device not in self.links:
            item.error(key, f"unknown device {device}: this router has "
                            f"{', '.join(sorted(self.links)) or 'no NICs'}")
            return False
        return True

    def device_for_mac(self, mac: str) -> str | None:
        wanted = mac.lower()
        for device, address in self.links.items():
            if address.lower() == wanted:
                return device
        return None
