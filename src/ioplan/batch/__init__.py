"""Cohort studies and uncertainty sweeps on Dask (issue 23).

Local by default (a ``LocalCluster``), a Dask cluster by address.
"""

__all__: list[str] = []
