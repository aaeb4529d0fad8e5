#!/bin/sh
# Make sure the dataflow-mysql tests can log in over TCP (127.0.0.1:3306, database `test`).
# If root already can (the default URL mysql://root@127.0.0.1:3306/test), nothing to do. If root
# may only use the local socket (unix_socket / auth_socket plugin), create a `dataflow` user through
# the socket and print the URL to export as DATAFLOW_MYSQL_URL.
#
#   .ci/mysql-user.sh     # may need sudo for the socket login
set -eu
CLIENT="$(command -v mariadb || command -v mysql || true)"
[ -n "$CLIENT" ] || { echo "mysql-user.sh: no mariadb/mysql client; skipping user setup" >&2; exit 0; }
DB_NAME="${DATAFLOW_MYSQL_DB:-test}"
if "$CLIENT" --protocol=tcp -h127.0.0.1 -P3306 -uroot -e "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\`" 2>/dev/null; then
    exit 0  # root works over TCP: the tests' default URL is fine
fi
USER_NAME="${DATAFLOW_MYSQL_USER:-dataflow}"
USER_PASS="${DATAFLOW_MYSQL_PASSWORD:-dataflow}"
"$CLIENT" --protocol=socket -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$USER_NAME'@'127.0.0.1' IDENTIFIED BY '$USER_PASS';
CREATE USER IF NOT EXISTS '$USER_NAME'@'localhost' IDENTIFIED BY '$USER_PASS';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$USER_NAME'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$USER_NAME'@'localhost';
FLUSH PRIVILEGES;
SQL
echo "export DATAFLOW_MYSQL_URL=mysql://$USER_NAME:$USER_PASS@127.0.0.1:3306/$DB_NAME"
