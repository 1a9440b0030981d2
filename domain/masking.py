"""Masks personal data (phones, addresses, names) for group chats where many people read along."""


def mask_phone(phone: str) -> str:
    digits = [c for c in phone if c.isdigit()]
    if len(digits) < 7:
        return "*" * len(digits)
    return "".join(digits[:3]) + "****" + "".join(digits[-4:])


def mask_address(address: str) -> str:
    """Keep the first words (city/district level) and hide the street and number."""
    text = address.strip()
    if not text:
        return ""
    if " " in text or "," in text:
        head = text.replace(",", " ").split()[0]
        return f"{head} ***"
    return text[: min(4, max(1, len(text) // 3))] + "***"


def mask_name(name: str) -> str:
    text = name.strip()
    if not text:
        return ""
    return text[0] + "**"
