"""Django's PostgreSQL backend, except that a kept connection the server has closed is noticed before
it is used, without a round trip.

With kept connections (LLMHUB_DB_CONN_MAX_AGE > 0), a fail-over or a server restart leaves every
thread holding a connection the server has already cut. Django finds out only when a statement fails
on it, so each kept connection would fail one request (a 503) before being reopened. Django's own
health check (CONN_HEALTH_CHECKS) sends `SELECT 1` before a connection's first use in each request
or task, a round trip every time (and the hot path starts several such tasks a request).

A server that ends a session sends its reason ("terminating connection due to administrator
command") and closes the socket, so an idle connection whose socket has something to read was
closed by the server, or is about to be. That is checked instead: one `select()` with no wait,
a few microseconds. An idle session has nothing else to read here (the hub does not LISTEN), and if
the server ever sent something else, the cost is one new connection, not an error.
Its refusal to run on an event loop's thread is checked without an exception (llmhub/loop_checks.py).
"""

import select

from django.db.backends.postgresql import base

from llmhub.loop_checks import LoopChecks


class DatabaseWrapper(LoopChecks, base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if self.pool is None and _closed_by_server(self.connection):
            self.close()
        self.health_check_done = True


def _closed_by_server(connection) -> bool:
    if connection.closed or connection.broken:
        return True
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    return bool(readable)
