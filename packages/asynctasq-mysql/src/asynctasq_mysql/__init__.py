"""AsyncTasQ driver for MySQL 8 and MariaDB 10.6+ on aiomysql.

```python
from asynctasq_mysql import MySQLDriver

driver = MySQLDriver(dsn="mysql://app:s%40cret@db:3306/app?ssl_mode=verify_identity")
```
"""

from asynctasq.errors import SchemaNotInitializedError  # re-exported: public since 0.1
from asynctasq_mysql.driver import DEFAULT_DSN, Lease, MySQLDriver
from asynctasq_mysql.dsn import MySQLDSN, SSLMode, parse_dsn
from asynctasq_mysql.errors import (
    ConfigurationError,
    MySQLDriverError,
    PayloadTooLargeError,
    UnsupportedServerError,
)
from asynctasq_mysql.server import ServerInfo

__all__ = [
    "DEFAULT_DSN",
    "ConfigurationError",
    "Lease",
    "MySQLDSN",
    "MySQLDriver",
    "MySQLDriverError",
    "PayloadTooLargeError",
    "SSLMode",
    "SchemaNotInitializedError",
    "ServerInfo",
    "UnsupportedServerError",
    "parse_dsn",
]
