"""Scale-out on Dask (``dask.distributed``): sweeps, designs and portfolios, block by block.

By default (and with ``--scheduler local``) the commands start a :class:`distributed.LocalCluster`
on this machine's cores (one single-threaded worker process per core); ``--scheduler ADDRESS``
(``tcp://host:8786``) uses an existing cluster, whose workers must have the same sibsim installed;
``--scheduler none`` runs in the command's own process (as does the default when Dask is not installed).  Needs the ``[distributed]``
extra (``pip install 'sibsim[distributed]'``).

What runs where does not change a number: every job carries its own seed, child ``b`` of the
run's ``SeedSequence`` for block ``b`` of a scenario (:func:`sibsim.sweep.block_plan`; a portfolio's
deals each their own child first), and results are gathered in job order.  So a run on any cluster,
with any number of workers, is bit-identical to the serial run (tests compare them on a 2-worker
local cluster).
"""

from __future__ import annotations

import os

from .errors import OutputError


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise OutputError("--scheduler: needs Dask: pip install 'sibsim[distributed]'") from None
    return distributed


class DaskRunner:
    """Maps jobs over a Dask cluster, results in job order; a context manager closing what it started.

    Parameters
    ----------
    address : str
        ``"local"``: a local cluster of ``n_workers`` single-threaded processes (default: the cores);
        otherwise a scheduler address.
    n_workers : int, optional
    """

    def __init__(self, address: str = "local", n_workers: int | None = None):
        distributed = _import_distributed()
        import dask

        # The workers' statistical profiler samples every thread's stack every 10 ms, holding the GIL:
        # the settlement of many variants (Python-level loops over contracts) ran at half speed with it.
        dask.config.set({"distributed.worker.profile.enabled": False})
        self.cluster = None
        if address == "local":
            self.cluster = distributed.LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                                                    processes=True, dashboard_address=":0")
            self.client = distributed.Client(self.cluster)
            self._prepare_workers()
        else:
            try:
                self.client = distributed.Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise OutputError(f"--scheduler {address}: cannot reach the scheduler ({exc})") from None
            self._prepare_workers()

    def map(self, fn, jobs: list) -> list:
        """``[fn(*job) for job in jobs]``, computed on the cluster (pure: the same job, the same result)."""
        if not jobs:
            return []
        futures = self.client.map(lambda job: fn(*job), jobs, pure=False)
        return self.client.gather(futures)

    def _prepare_workers(self) -> None:
        """Each worker as sibsim's own worker processes are set up (:mod:`sibsim.simulation`): freed memory
        kept for the next block (Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_`` low, and a block's large
        temporaries were then faulted back in page by page: the same block took 2.4 times as long in a
        worker as in this process); Dask already gives each worker one BLAS thread."""
        from .simulation import _keep_freed_memory

        self.client.run(_keep_freed_memory)

    def on_every_worker(self, fn, *args) -> None:
        """Run ``fn(*args)`` once on every worker (e.g. to load the compiled kernels before timing)."""
        self.client.run(fn, *args)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> "DaskRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def block_runner(runner: DaskRunner):
    """A ``runner`` for :func:`sibsim.sweep.evaluate`: each ``(contracts, seed, paths)`` block a task."""
    from .sweep import sweep_block

    return lambda jobs: runner.map(sweep_block, jobs)


def deal_runner(runner: DaskRunner):
    """A ``runner`` for :func:`sibsim.portfolio.simulate_portfolio`: each block of each deal a task,
    reassembled per deal in block order (as :func:`sibsim.portfolio.deal_paths` does serially)."""
    import numpy as np

    from .montecarlo import block_size
    from .portfolio import _deal_block, fresh

    def run(jobs):
        tasks, owner = [], []
        for d, (holding, seed, n_paths, common) in enumerate(jobs):
            size = block_size(holding.contract)
            n_blocks = -(-n_paths // size)
            for b, child in enumerate(fresh(seed).spawn(n_blocks)):
                lo, hi = b * size, min((b + 1) * size, n_paths)
                tasks.append((holding, child, hi - lo, common.take(lo, hi)))
                owner.append(d)
        parts = runner.map(_deal_block, tasks)
        out = []
        for d in range(len(jobs)):
            mine = [p for p, o in zip(parts, owner) if o == d]
            out.append({k: np.concatenate([p[k] for p in mine]) for k in mine[0]})
        return out

    return run


#: ``--scheduler`` value that runs everything in this process.
IN_PROCESS = "none"


def available() -> bool:
    """Whether Dask's distributed scheduler is installed (the ``[distributed]`` extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def runner_for(address: str | None):
    """A context manager: the :class:`DaskRunner` of ``--scheduler ADDRESS``, or None (this process).

    ``None`` (the option not given): a local cluster on this machine's cores when Dask is installed,
    else this process; ``"none"``: this process; ``"local"`` or an address: that cluster (an error
    when Dask is not installed).  The numbers are the same in every case.
    """
    import contextlib

    if address == IN_PROCESS or (address is None and not available()):
        return contextlib.nullcontext(None)
    return DaskRunner(address or "local")


def add_scheduler_argument(parser, what: str = "the blocks") -> None:
    """``--scheduler ADDRESS`` for a command that can run on Dask (:func:`runner_for` reads it)."""
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help=f"Dask cluster for {what}: 'local' (this machine's cores; the default when Dask is "
                             "installed), a scheduler address, or 'none' (this process); the same numbers on any")
