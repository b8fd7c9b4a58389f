# Rendered by `flightdelay stack up`: do not edit.
SERVER_MODE = True
DEFAULT_SERVER = '127.0.0.1'
DEFAULT_SERVER_PORT = 57050
DATA_DIR = '/work/main/.stack-bench/pgadmin'
LOG_FILE = '/work/main/.stack-bench/pgadmin/pgadmin4.log'
SQLITE_PATH = '/work/main/.stack-bench/pgadmin/pgadmin4.db'
SESSION_DB_PATH = '/work/main/.stack-bench/pgadmin/sessions'
STORAGE_DIR = '/work/main/.stack-bench/pgadmin/storage'
AZURE_CREDENTIAL_CACHE_DIR = '/work/main/.stack-bench/pgadmin/azure'
KERBEROS_CCACHE_DIR = '/work/main/.stack-bench/pgadmin/krb'
UPGRADE_CHECK_ENABLED = False
MASTER_PASSWORD_REQUIRED = False
