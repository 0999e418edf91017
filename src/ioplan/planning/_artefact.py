"""Issue 22: artefact (filled in by its owner; its public names go in ``__all__``)."""

__all__: list[str] = []
