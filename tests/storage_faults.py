"""A media disk that runs out of room, for the worker processes of the storage-failure tests
(tests/settings.py swaps it in when TORN_WRITES is set): the output writes it names (0 the first,
counted in the file TORN_WRITES_COUNTER) are torn — half the bytes reach the file, then ENOSPC, as on a
full disk."""

import errno
import fcntl
import os
from pathlib import Path

from django.core.files.storage import FileSystemStorage


class TornWrites(FileSystemStorage):
    def _save(self, name, content):
        if name.startswith("generations/") and self._next_write() in _torn():
            path = Path(self.path(name))
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content.read()
            path.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return super()._save(name, content)

    @staticmethod
    def _next_write() -> int:
        with open(os.environ["TORN_WRITES_COUNTER"], "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            written = int(handle.read() or 0)
            handle.seek(0)
            handle.truncate()
            handle.write(str(written + 1))
        return written


def _torn() -> set[int]:
    return {int(index) for index in os.environ["TORN_WRITES"].split(",")}
