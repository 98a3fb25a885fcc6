"""All database work of the aggregator: synchronous, run on worker threads. One module per job:

- accounts: user accounts, login sessions, engine tokens;
- registration: engines and their tags (what RegisterEngine records);
- ingest (with runs and batch): batches of engine messages and the run lifecycle they drive,
  on the one writer thread;
- quarantine: messages that failed to apply, kept whole until an admin replays them;
- compaction: a tag's recent sample rows turned into compressed chunks;
- queries: runs, logs, samples and plots read back (plot_plan: the plot from chunk summaries);
- tables: the tables, and how a sample value is kept in a row;
- rows: the frozen, typed rows the reads hand out (run-log lines alone stay the JSON objects
  they were stored as: callers validate them).

Who may import what: the rest of the aggregator uses `Storage` (and BatchOp, BatchResult and
StoredError on the ingest path, Quarantined and Replayed for quarantine) from this package, and
the row classes of store/rows.py to annotate what it reads; the other modules are for the
store and its tests. Nothing outside aggregator/ imports the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from aggregator.store import compaction
from aggregator.store.accounts import Accounts
from aggregator.store.batch import BatchOp, BatchResult, StoredError
from aggregator.store.compaction import Compactor
from aggregator.store.ingest import Ingest
from aggregator.store.methods import MethodLibrary
from aggregator.store.quarantine import Quarantined, QuarantineQueries, Replayed
from aggregator.store.queries import Queries
from aggregator.store.registration import Registry
from aggregator.store.signatures import Signatures

__all__ = ["BatchOp", "BatchResult", "Quarantined", "Replayed", "Storage", "StoredError"]


class Storage:
    """The store's parts over one database, and the operations callers use, each the method of
    the one part that owns it.

    `ingest` (with its registry, runs and compactor; it also replays quarantined messages)
    keeps caches that only the writer thread may touch; `accounts`, `queries` and `quarantine`
    keep nothing and serve any thread."""

    write_chunks = staticmethod(compaction.write_chunks)

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.accounts = Accounts(engine, clock)
        self.ingest = Ingest(engine, clock, Registry(), Compactor(engine, clock))
        self.queries = Queries(engine)
        self.quarantine = QuarantineQueries(engine)
        self.methods = MethodLibrary(engine, clock)
        self.signatures = Signatures(engine, clock)

        self.create_engine_token = self.accounts.create_engine_token
        self.engine_token_name = self.accounts.engine_token_name
        self.bind_engine_token = self.accounts.bind_engine_token
        self.list_engine_tokens = self.accounts.list_engine_tokens
        self.revoke_engine_token = self.accounts.revoke_engine_token
        self.valid_engine_tokens = self.accounts.valid_engine_tokens
        self.live_sessions = self.accounts.live_sessions
        self.add_user = self.accounts.add_user
        self.change_user = self.accounts.change_user
        self.delete_user = self.accounts.delete_user
        self.end_session = self.accounts.end_session
        self.set_full_name = self.accounts.set_full_name
        self.user_by_name = self.accounts.user_by_name
        self.create_session = self.accounts.create_session
        self.session_user = self.accounts.session_user

        self.register_engine = self.ingest.register_engine
        self.apply_batch = self.ingest.apply_batch
        self.apply_and_maintain = self.ingest.apply_and_maintain
        self.maintain = self.ingest.maintain
        self.maintenance_due = self.ingest.maintenance_due
        self.replay_quarantined = self.ingest.replay
        self.note_error = self.ingest.note_error

        self.last_seq = self.queries.last_seq
        self.read_samples = self.queries.read_samples
        self.read_decimated = self.queries.read_decimated
        self.run_tags = self.queries.run_tags
        self.run_time_range = self.queries.run_time_range
        self.run_by_id = self.queries.run_by_id
        self.list_runs = self.queries.list_runs
        self.list_engines = self.queries.list_engines
        self.run_log = self.queries.run_log
        self.error_log = self.queries.error_log
        self.run_methods = self.queries.run_methods
        self.iter_run_rows = self.queries.iter_run_rows
