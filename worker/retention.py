"""The retention sweep in every worker process (and so in `ctrlgenaug up`): deletes the uploaded assets
older than their project's retention setting (store.retention.sweep_expired_assets). Several workers sweep
safely: each asset is deleted under a row lock, a locked one is skipped until the next round."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from store.objects import ObjectStore
from store.retention import sweep_expired_assets

logger = logging.getLogger(__name__)


class RetentionSweeper(threading.Thread):
    """Sweeps at start, then every `interval_s`, until `stop()`."""

    def __init__(self, sessions: sessionmaker[Session], store: ObjectStore, interval_s: float) -> None:
        super().__init__(name="retention-sweeper", daemon=True)
        self.sessions = sessions
        self.store = store
        self.interval_s = interval_s
        self._stopped = threading.Event()

    def sweep(self) -> int:
        with self.sessions() as session:
            return len(sweep_expired_assets(session, self.store))

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - the sweeper keeps going; the next round retries
                logger.exception("retention sweep failed")
            self._stopped.wait(self.interval_s)

    def stop(self) -> None:
        self._stopped.set()
