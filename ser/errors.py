"""Errors that the recipe reports to the user as one clear line."""


class SerError(Exception):
    """A problem with the user's input: data, configuration or options."""


class CorpusError(SerError):
    """A corpus directory that does not match its documented layout."""


class AudioError(SerError):
    """An audio file that cannot be used: unreadable, empty or too short."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
