"""CPU threading policy, applied on import, before torch loads OpenMP.

Each loaded model runs torch from its own owner thread, and each such thread
drives its own OpenMP team. With OpenMP's default policy an idle team keeps
its threads spinning for a while, starving whichever team runs next on a CPU
host. Measured on 2 CPUs (small model, 8 streams interleaved with raw
transformers): spinning gave 80-240 tok/s from run to run, passive waiting
226-269 with no loss single-stream. An operator's own OMP_WAIT_POLICY wins.

CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA number GPUs as discovery reports them
(PCI bus order) instead of fastest first; loads find GPUs by UUID either way,
so an operator's own order still works.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
