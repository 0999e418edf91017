"""Compile (or load) the engine's CPU kernels for one dtype, before the suite's tests.

Run as ``python tests/_warm_kernels.py float32 DONE_FILE``.

Started by tests/conftest.py before the xdist workers run any test. In a fresh checkout
numba has no cache yet, and every worker and every CLI or web subprocess a test starts
compiled the same kernels again (about 40 s of one core per dtype, session 49: the clean
clone's suite took 621 s against 538-562 s warm). Here each dtype is compiled once, in
parallel, and written to numba's cache, which the test processes then load. Tiny runs of
each modality go through the same code, with the same argument types, as the tests' runs.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(dtype: str, done: Path) -> None:
    try:
        from ioplan.devices import applicator
        from ioplan.physics import CryoProtocol, SimulationConfig, simulate

        common = {"spacing_mm": 5.0, "margin_mm": 10.0, "dtype": dtype}
        simulate(SimulationConfig(applicator("covidien-emprint"), power_w=60.0,
                                  duration_s=20.0, **common))  # fmt: skip
        simulate(SimulationConfig(applicator("cooled-rf-3cm"), power_w=100.0,
                                  duration_s=20.0, **common))  # fmt: skip
        simulate(SimulationConfig(applicator("cryo-2.4mm"), protocol=CryoProtocol.parse(
            "freeze:20"), **common))  # fmt: skip
        if dtype == "float32":
            from ioplan.monitoring._prf import warm_up

            warm_up()
    finally:
        done.touch()  # the workers wait for this, whatever happened here


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
