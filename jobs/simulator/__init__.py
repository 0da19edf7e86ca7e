"""The simulated world: people with one coherent set of identities across every platform,
written as the platforms' own exports, API responses and callbacks, with ground truth in
`_truth/` (for evaluation only: no pipeline step reads it).

Public interface: `simulate` (write a world), `SimulationSummary`, `Mess` (the mess rates),
`World`/`Person` (the people, rebuilt from the seed), `writers()` (every dataset's writer) and
`datasets()` (how truth finds each dataset's records and identifiers in the written files).
"""

from jobs.simulator.mess import Mess
from jobs.simulator.run import SimulationSummary, datasets, simulate, writers
from jobs.simulator.world import Person, World

__all__ = ["Mess", "Person", "SimulationSummary", "World", "datasets", "simulate", "writers"]
