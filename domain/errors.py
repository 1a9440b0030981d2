"""Domain errors: each carries a code that conversations turn into a friendly, translated reply."""


class DomainError(Exception):
    """A rule of the domain refused an operation; ``code`` names the reason."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


class IllegalTransition(DomainError):
    def __init__(self, current: str, action: str) -> None:
        super().__init__("illegal_transition", current=current, action=action)


class InvalidInput(DomainError):
    """Input from a user or an integrator does not fit the rules (range, format, choice)."""


class NotFound(DomainError):
    pass


class NotAllowed(DomainError):
    pass
