"""Database faults: the errors that mean the database cannot be written just now (locked, read-only,
connection lost, shutting down), as opposed to a mistake in a query or a broken constraint.

Code that must not lose a write (settlements) or must answer clearly (reservations) catches these.
"""

from django.db import InterfaceError, InternalError, OperationalError

# PostgreSQL reports a read-only database as InternalError ("cannot execute INSERT in a read-only
# transaction"); SQLite as OperationalError ("attempt to write a readonly database"), as it does a
# lock held past the busy timeout; a lost connection is OperationalError or InterfaceError.
UNAVAILABLE = (OperationalError, InterfaceError, InternalError)
