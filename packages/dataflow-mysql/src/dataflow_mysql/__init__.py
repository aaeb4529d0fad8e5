"""DataFlow's MySQL / MariaDB backend on aiomysql (``mysql://`` and ``mariadb://`` URLs)."""

from .capabilities import MySQLCapabilities

__all__ = ["MySQLCapabilities"]
