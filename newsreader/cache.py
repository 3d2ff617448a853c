"""Django's Redis cache, keeping one client per connection pool.

Django's client builds a new `redis.Redis` for every cache operation, and redis-py fills a table
of some 170 response callbacks in each new instance: about a third of a millisecond, more than the
round trip to Redis itself. A `redis.Redis` is safe to share between threads (each command takes a
connection from the pool), so one per pool is kept and reused.
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ReusingRedisCache(RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
