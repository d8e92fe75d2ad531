"""Kombu's Redis transport without its redis-py version gate.

kombu 5.7 refuses redis-py older than 6.1, and this project's dev
environment pins redis-py 5 (arq requires redis<6). The transport itself
runs on redis-py 5: this subclass only skips the version check, and is used
only when the installed redis-py is older than 6.1 (see worker.py).
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    def _get_client(self) -> Any:
        if self.global_keyprefix:
            return functools.partial(
                kombu_redis.PrefixedStrictRedis, global_keyprefix=self.global_keyprefix
            )
        return redis.Redis


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel
