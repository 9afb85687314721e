"""One run per output at a time: a lock file with a heartbeat under ``<output>/_state/lock.json``.

A second run on the same output is refused with a clear message while the first is alive. A lock
left by a killed run does not block: on the same host its process is gone; elsewhere (a driver
on another node, object storage) its heartbeat stops and it goes stale after ``ttl_s``.

Releasing the lock also removes ``<output>/_state/`` when nothing else is in it (a run that
failed before writing any marker leaves no empty folder behind; object stores have no folders).
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid

from fsspec.implementations.local import LocalFileSystem

from audiorole_ray.errors import ConfigError
from audiorole_ray.io.storage import filesystem, join, read_json, remove, write_json


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    def __init__(self, output_uri: str, ttl_s: float = 120.0, beat_s: float = 20.0, name: str = "lock"):
        self.uri = join(output_uri, "_state", f"{name}.json")
        self.output_uri = output_uri
        self.ttl_s, self.beat_s = ttl_s, beat_s
        self.me = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nested = False

    def _alive(self, lock: dict) -> bool:
        if lock.get("host") == self.me["host"] and not _pid_alive(int(lock.get("pid", -1))):
            return False
        return time.time() - float(lock.get("heartbeat", 0)) < self.ttl_s

    def _read(self) -> dict | None:
        try:
            return read_json(self.uri)
        except (FileNotFoundError, ValueError):
            return None

    def _write(self) -> None:
        write_json(self.uri, {**self.me, "heartbeat": time.time()})

    def acquire(self) -> OutputLock:
        held = self._read()
        if held and (held.get("host"), held.get("pid")) == (self.me["host"], self.me["pid"]) and self._alive(held):
            self._nested = True  # this process holds it already (the CLI, then the job)
            return self
        if held and held.get("owner") != self.me["owner"] and self._alive(held):
            raise ConfigError(
                f"output {self.output_uri!r} is in use by another run (pid {held.get('pid')} on {held.get('host')}, "
                f"started {held.get('started')}); wait for it to finish, or delete {self.uri} if that run is gone"
            )
        self._write()
        time.sleep(0.05)
        if (self._read() or {}).get("owner") != self.me["owner"]:  # lost a race with a run starting now
            raise ConfigError(f"output {self.output_uri!r} was taken by another run starting at the same time")
        self._thread = threading.Thread(target=self._beat, name="output-lock", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.beat_s):
            try:
                self._write()
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lock's life
                pass

    def release(self) -> None:
        if self._nested:
            return
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if (self._read() or {}).get("owner") == self.me["owner"]:
            remove([self.uri])
            self._remove_empty_state()

    def _remove_empty_state(self) -> None:
        """Remove ``_state/`` if it is empty: whoever made it (check_writable's probe makes it
        before the lock), an empty one holds nothing a run needs."""
        fs, path = filesystem(self.uri)
        if isinstance(fs, LocalFileSystem):
            try:
                os.rmdir(os.path.dirname(path))  # refuses, atomically, a folder that is not empty
            except OSError:
                pass

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
