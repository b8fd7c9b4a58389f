"""ModelHolder: owns the served model. Loads it in the background with bounded backoff, follows
the alias, and swaps.

Readers take `holder.current` (one attribute read) and keep that object for the whole request,
so a swap, which is one reference assignment after the new model was fully loaded and checked,
never mixes two models in one answer.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flightdelay.core.config import SERVING_ALIAS, ServiceSettings
from flightdelay.core.errors import UserError
from flightdelay.serving.runtime import fleet
from flightdelay.serving.runtime.served import ModelUnavailable, ServedModel
from flightdelay.serving.scrub import install_log_scrubbing, scrub

log = logging.getLogger(__name__)
install_log_scrubbing(__name__)

Listener = Callable[[str, bool], None]  # (event "load" | "swap", ok)


def load_model(
    settings: ServiceSettings, name: str, alias: str | None, version: int | None, client: Any
) -> ServedModel:
    """resolve -> download -> verify (the heavy imports happen here, on the first load)."""
    from flightdelay.serving.runtime.load import load_served_model

    return load_served_model(settings, name, alias, version, client)


class ModelHolder:
    """Owns the served model: initial load with background retry, swaps, optional alias polling."""

    def __init__(self, settings: ServiceSettings) -> None:
        if not settings.model_name:
            raise UserError("MODEL_NAME is not set: name the registered model the service serves")
        self.settings = settings
        self.name = settings.model_name
        self.current: ServedModel | None = None
        self.last_error: str | None = "model not loaded yet"
        self.target_alias: str | None = settings.model_alias  # None when a version is pinned
        self.listeners: list[Listener] = []  # e.g. metrics
        self.pin: dict[str, Any] | None = None  # the registry's serving pin, as last read
        self._client: Any = None
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def client(self) -> Any:
        """The service's MlflowClient (explicit tracking and registry URIs, built on first use)."""
        if self._client is None:
            from flightdelay.serving.runtime.resolve import registry_client

            self._client = registry_client(self.settings.mlflow_tracking_uri)
        return self._client

    # -- loading and swapping --------------------------------------------------------------
    def _emit(self, event: str, ok: bool) -> None:
        for listener in self.listeners:
            listener(event, ok)

    def swap(self, alias: str | None = None, version: int | None = None) -> ServedModel:
        """Load `alias` or `version`, check it, then make it current in one assignment.

        On failure the current model keeps serving and ModelUnavailable says why.
        """
        with self._swap_lock:
            return self._commit(self._load(alias, version))

    def reload(self) -> ServedModel:
        """Re-resolve the configured alias (MODEL_ALIAS) and serve it."""
        return self.swap(alias=self.settings.model_alias)

    def assign(self, alias: str | None, version: int | None, reason: str) -> ServedModel:
        """Serve `alias` or `version` fleet-wide: load and check it here first (a model that
        fails its checks moves nothing), then pin it as the registry's `@serving`, then swap it
        in here. Following `@serving` (MODEL_ALIAS), this replica keeps following it; otherwise
        it serves what was asked, as before the fleet existed."""
        with self._swap_lock:
            new = self._load(alias, version)
            self.pin = fleet.pin(self.client, self.name, new.version, reason)
            if self.settings.model_alias == SERVING_ALIAS:
                new = fleet.relabel(new, SERVING_ALIAS)
            return self._commit(new)

    def release(self) -> ServedModel:
        """Clear the fleet's pin (`@serving` follows `@champion` again) and serve MODEL_ALIAS."""
        with self._swap_lock:
            fleet.unpin(self.client, self.name)
            self.pin = None
            return self._commit(self._load(self.settings.model_alias, None))

    def refresh_pin(self) -> None:
        """Re-read the registry's pin (kept as it was when the registry cannot be read)."""
        try:
            self.pin = fleet.read_pin(self.client, self.name)
        except ModelUnavailable as exc:
            log.warning("could not read the serving pin: %s", exc)

    def _load(self, alias: str | None, version: int | None) -> ServedModel:
        try:
            new = load_model(self.settings, self.name, alias, version, self.client)
        except ModelUnavailable as exc:
            self._emit("load", False)
            if self.current is not None:
                self._emit("swap", False)
            log.warning("model load failed: %s", exc)
            raise
        self._emit("load", True)
        return new

    def _commit(self, new: ServedModel) -> ServedModel:
        had_model = self.current is not None
        new.warm()
        self.current = new  # the atomic swap
        self.target_alias = new.alias
        self.last_error = None
        if had_model:
            self._emit("swap", True)
        log.info("serving %s v%s (alias %s, scorer %s)", new.name, new.version, new.alias, new.kind)
        return new

    # -- background work ---------------------------------------------------------------------
    def start(self) -> None:
        """Load in the background: retry with bounded backoff until a model is served, then
        (when API_POLL_SECONDS > 0) follow the alias: a new version behind it is swapped in."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-loader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background loader (waits up to 5 s for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        if self._load_until_served():
            self._follow_until_stopped()

    def _attempt(self, first: bool) -> bool:
        """One load attempt of the target alias; returns whether to back off (the model is
        unavailable). A failure sets `last_error`."""
        try:
            with self._swap_lock:
                with gc_paused(first):
                    new = self._load(self.target_alias, None)
                self.refresh_pin()  # before the model shows: GET /model has the pin at once
                self._commit(new)
        except ModelUnavailable as exc:
            self.last_error = str(exc)
            return True
        except Exception as exc:  # never let the loader thread die silently
            self.last_error = scrub(f"{type(exc).__name__}: {exc}", 500)
            log.exception("unexpected error while loading the model")
        return False

    def _load_until_served(self) -> bool:
        """Retry the first load with doubling delays (API_RETRY_MIN..MAX_SECONDS) until a model
        is served; False when stopped first."""
        delay = self.settings.api_retry_min_seconds
        first = True
        while not self._stop.is_set() and self.current is None:
            backoff = self._attempt(first)
            if self.current is None and self._stop.wait(delay):
                return False
            if backoff:
                delay = min(delay * 2, self.settings.api_retry_max_seconds)
            first = False
        return not self._stop.is_set()

    def _follow_until_stopped(self) -> None:
        poll = self.settings.api_poll_seconds
        while poll > 0 and not self._stop.wait(poll):
            self.follow_alias()

    def follow_alias(self) -> None:
        """Swap in the version behind the target alias if it moved, and re-read the pin
        (errors are only logged)."""
        current, alias = self.current, self.target_alias
        if current is None or alias is None:
            return
        try:
            mv = self.client.get_model_version_by_alias(self.name, alias)
            self.refresh_pin()  # first: the new model shows with its pin
            if int(mv.version) != current.version:
                self.swap(alias=alias)
        except Exception as exc:
            log.warning(
                "alias poll failed (still serving v%s): %s", current.version, scrub(str(exc))
            )


@contextmanager
def gc_paused(active: bool) -> Iterator[None]:
    """Run the first load without the cyclic garbage collector, then freeze what it built.

    The first load imports MLflow, SQLAlchemy, pandas and sklearn: about half a million objects
    that live as long as the process. With the collector on, their creation triggers collections
    that rescan them again and again (a third of the start-up time), and every later full
    collection rescans them too (a latency spike under load). `gc.freeze()` moves them out of the
    collector's sight. It skips a final collection: the few thousand unreachable objects the load
    left (well under 1 MB) are not worth a 0.3 s pause.
    """
    enabled = active and gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def wait_ready(holder: ModelHolder, timeout: float) -> bool:
    """Block until a model is served or `timeout` seconds passed; returns readiness."""
    end = time.monotonic() + timeout
    while holder.current is None and time.monotonic() < end:
        time.sleep(0.05)
    return holder.current is not None
