"""The reference kernel library; importing it registers every kernel.

Conventions shared by every kernel:

* Parameters are positional: tensors first (inputs, then outputs), SCALARs
  last, as upstream's ``kernel_add_scalar`` unpacks ``args[2]`` after its two
  tensors (``examples/a2a3/tensormap_and_ringbuffer/vector_example``).
* Floating-point kernels accept float32, float16 and bfloat16 (``ml_dtypes``);
  16-bit values are widened to float32 for the fast path and rounded once on
  the way out. Integer support (int32, int8) is listed per kernel. The fast
  paths accumulate in float32 (long sums blockwise with compensation, see
  ``_numerics``); the goldens compute in float64.
* Outputs are written in place into the arrays passed for OUT/INOUT params.
* ``tolerance(dtype)`` is the (rtol, atol) at which the fast path, the golden
  and a conforming implementation agree for unit-scale inputs. Kernels whose
  error grows with an accumulation length (matmul, linear, attention, expert
  FFN) state so in their module docstring, as do those whose float32 sums of
  either sign are accurate relative to the terms rather than to a result the
  terms cancel (LayerNorm, MoE combine, all-reduce, reduce-scatter): their atol
  is for unit-scale terms.
* ``cost`` depends on shapes and dtypes only, so a timing-only run and a
  functional run of the same graph are charged the same. Data-dependent
  kernels (paged attention) charge the shape's upper bound.
* The numba kernels are single-threaded and release the GIL, so an executor
  can run independent tasks in parallel without oversubscribing the cores.
"""

import contextlib
import os
from pathlib import Path


def _drop_stale_numba_caches() -> None:
    """Forget cached kernels compiled against an older ``_numerics.py``.

    numba validates a cached function against its *own* source file only, but
    the kernels here compile ``_numerics``' helpers (exp, row max, ...) into
    themselves, so editing ``_numerics.py`` would otherwise leave every kernel
    module running the old helpers. Removing the stale index files makes numba
    recompile. Only the in-tree cache is handled (not ``NUMBA_CACHE_DIR``).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = Path(__file__).parent
    cache = here / "__pycache__"
    if not cache.is_dir():
        return
    helpers_changed = (here / "_numerics.py").stat().st_mtime
    for index in cache.glob("*.nbi"):
        if not index.name.startswith("_numerics.") and index.stat().st_mtime < helpers_changed:
            with contextlib.suppress(OSError):  # a read-only install keeps its cache; nothing to do
                index.unlink()


_drop_stale_numba_caches()

from reference.kernels import (  # noqa: E402, F401 - registration happens on import
    activations,
    attention,
    collectives,
    elementwise,
    linear,
    moe,
    norms,
    rope,
    softmax,
)
