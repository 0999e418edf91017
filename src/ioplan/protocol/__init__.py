"""MR-guided procedure protocols (issue 22).

Steps, roles, sequences, thermometry parameters, device MR conditions.
"""

__all__: list[str] = []
