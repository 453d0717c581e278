# kmipd.hcl — every key kmipd understands, with its default.
#
# Unknown keys or blocks are errors. Relative paths are resolved against the
# directory of this file. Durations use Go syntax ("500ms", "30s", "2m", "1h").
# Run `kmipd dev` for a ready-made local setup, or `kmipd certs init DIR` for
# the CA, server and client certificates referred to below.

# The KMIP endpoint: binary TTLV over mutual TLS (TLS 1.2 and 1.3).
listener {
  # host:port to listen on. Default "0.0.0.0:5696" (the IANA KMIP port).
  address = "0.0.0.0:5696"

  # Server certificate and key, PEM. Required.
  cert_file = "/etc/kmipd/server.crt"
  key_file  = "/etc/kmipd/server.key"

  # Clients must present a certificate that chains to a CA in this PEM file.
  # Required. A client's identity is the SHA-256 of its certificate's public
  # key, so a certificate reissued for the same key keeps its objects.
  client_ca_file = "/etc/kmipd/ca.crt"

  # Lowest TLS version accepted: "1.2" or "1.3". Default "1.2".
  min_tls_version = "1.2"

  # Largest KMIP message accepted, checked from the TTLV header before any
  # allocation. Bytes as a number, or "512KiB", "1MiB", "1GiB" (also KB, MB,
  # GB in powers of ten). At most 1GiB. Default "1MiB".
  max_message_size = "1MiB"

  # Time allowed to read one request once it has started. Default "30s".
  read_timeout = "30s"

  # A connection with no request in flight is closed after this. Default "2m".
  idle_timeout = "2m"

  # Time allowed to write one response. Default "30s".
  write_timeout = "30s"

  # Work one request message may cause: between batch items and during Locate
  # kmipd stops once this has passed and fails the rest of the batch, so a
  # huge batch cannot keep a core busy after its client is gone. Default "30s".
  request_timeout = "30s"

  # Concurrent connections; more are refused. Default 10000.
  max_connections = 10000

  # A KMIP Credential (Username and Password, or Device) in a request is
  # optional, and names a user under the TLS client (kmip.credentials), its
  # password bound on first use; if this is true, a Username and Password
  # credential is required and checked against credentials_file instead.
  # Default false.
  check_credentials = false

  # With check_credentials: a file of "username:password" lines (blank lines
  # and lines starting with # ignored). Keep it mode 0600. No default.
  # credentials_file = "/etc/kmipd/credentials"
}

# The PKCS#11 HSM holding the master keys. kmipd opens at most max_sessions
# sessions and never talks to the HSM outside that pool.
hsm {
  # Path of the PKCS#11 module. Required. A bare file name (no "/") is left
  # to the dynamic loader's search path.
  module = "/usr/lib/softhsm/libsofthsm2.so"

  # Which token to use: exactly one of token_label, token_serial or slot
  # (a whole number, the PKCS#11 slot ID).
  token_label = "kmipd"
  # token_serial = "5c1f6d2e8a0b3c47"
  # slot = 0

  # The token's user PIN. Required. One of:
  #   "env:NAME"   the value of environment variable NAME (must be set)
  #   "file:PATH"  the contents of PATH without the trailing newline
  #   anything else is the PIN itself (discouraged: keep it out of this file)
  pin = "env:KMIPD_HSM_PIN"

  # Most PKCS#11 sessions open at once, the logged-in session included, so at
  # least 2. Callers queue when all are busy. Default 4.
  max_sessions = 4

  # Sessions kept open while idle (must be less than max_sessions). Default 0.
  min_idle = 0

  # How long a caller waits for a free session before failing. Default "5s".
  session_wait_timeout = "5s"

  # An idle session beyond min_idle is closed after this. Default "30s".
  idle_timeout = "30s"

  # Labels of the master key-encryption key (AES-256) and the HMAC key, both
  # token objects. Must differ. Defaults "kmipd-mkek" and "kmipd-hmac".
  mkek_label = "kmipd-mkek"
  hmac_label = "kmipd-hmac"

  # Replicas on one PostgreSQL store (storage.backend = "postgres") sharing
  # this HSM: the sessions open to it, summed over every replica, never
  # exceed this; max_sessions then caps this replica's share. At least the
  # number of replicas (each keeps its login session). Unset: no cluster
  # budget. See deploy/cluster/README.md.
  # cluster_max_sessions = 12
}

# Where sealed objects and wrapped per-client keys live.
storage {
  # "badger" (default): an embedded database for one kmipd. "postgres": a
  # PostgreSQL database several kmipd replicas share (the postgres block).
  backend = "badger"

  # Badger's database directory. Required with badger.
  path = "/var/lib/kmipd/badger"

  # Badger: fsync every write before answering. Default true; false loses
  # the last writes on a power failure. (PostgreSQL's durability is the
  # server's synchronous_commit.)
  sync_writes = true

  # Badger's memory (badger only). Badger's own defaults (five 64 MiB
  # memtables, a 256 MiB block cache, every table index and Bloom filter in
  # memory without bound) do not fit a small VM; these do: with the kek and
  # objects caches' defaults, kmipd stays under 512 MiB of anonymous memory
  # with a million objects (README, Performance). Table files are
  # memory-mapped on top of that: their pages are page cache, which the
  # kernel reclaims under pressure.
  # Sealed records kept for repeated reads; 0 turns it off. Default "32MiB".
  cache_bytes = "32MiB"
  # Table blocks read; 0 turns it off. Default 0: kmipd's tables are not
  # compressed or encrypted by badger, so a block is read in place from the
  # mapped table file and the cache saves nothing (badger says as much).
  block_cache_bytes = 0
  # Indexes of tables badger encrypts, which kmipd's are not: its tables'
  # indexes and Bloom filters (about 5% of the store, 98 MB at a million
  # objects) are read from the mapped files. At least 1 MiB. Default "64MiB".
  index_cache_bytes = "64MiB"
  # One memtable: the writes since the last flush, a skiplist in memory and a
  # memory-mapped WAL of the same size. Smaller ones flush more often (each
  # flush stalls synced writes briefly). 16 MiB to 1 GiB. Default "64MiB".
  memtable_bytes = "64MiB"
  # Memtables held, the one being written included (the others wait to be
  # flushed). 1 to 16. Default 2.
  num_memtables = 2

  # With backend = "postgres" (and none of the badger keys above):
  # postgres {
  #   # libpq URL or key=value string; several hosts with
  #   # target_session_attrs=read-write follow a failover. Literal, env:NAME
  #   # or file:PATH. Required.
  #   url = "postgres://kmipd@db1,db2/kmipd?target_session_attrs=read-write"
  #   # Replaces the url's password: literal, env:NAME or file:PATH.
  #   password = "env:KMIPD_PG_PASSWORD"
  #   # Connections of this replica. Default 16.
  #   max_conns = 16
  # }
}

# Per-client key-encryption keys, unwrapped by the HSM and cached in memory so
# steady-state requests need no HSM session. Optional block.
kek {
  # How long an unwrapped key stays cached. Default "15m".
  cache_ttl = "15m"

  # Most keys cached at once (one per active client). Default 10000.
  cache_size = 10000
}

# The object layer: the KMIP managed objects (keys, secrets, certificates)
# as kmipd opens them from their sealed records. Its own block because its
# settings are about objects, not about the keys that seal them (kek) nor the
# database that holds the sealed bytes (storage). Optional block.
objects {
  # Memory for objects already opened (decrypted and decoded) under a cached
  # key, so that repeated Gets and Encrypts of the same key skip that work.
  # An object is reused only while its stored record is unchanged and the
  # key that opened it is still the cached one, so it lives no longer than
  # kek.cache_ttl; writes drop it at once. It holds key material in the
  # clear, as the key cache does. 0 turns it off. Default "32MiB".
  # (Formerly kek.object_cache_bytes, still read with a warning; setting
  # both is an error.)
  cache_bytes = "32MiB"
}

# KMIP protocol policy. Optional block.
kmip {
  # The longest lease granted on a cryptographic object (KMIP Lease Time):
  # every key, certificate and secret reports it in its Lease Time attribute,
  # and Obtain Lease grants it again on an Active object. Clients that honour
  # leases re-check an object this often. Whole seconds, at most
  # "4294967295s". Default "1h".
  lease_time = "1h"

  # Bounds on one Derive Key request, which KMIP leaves to the server. PBKDF2
  # runs its Iteration Count once per hash-length block of output, so this
  # bounds iterations x blocks: 2000000 is about a second of one core, above
  # OWASP's 2023 advice (600000 for HMAC-SHA-256). Default 2000000.
  max_derive_iterations = 2000000

  # The longest key or Secret Data object Derive Key makes, in bytes (its
  # Cryptographic Length / 8). At most 1048576. Default 4096.
  max_derive_bytes = 4096
  # Whether kmipd may answer Locate, Archive and Recover asynchronously
  # (Operation Pending, then Poll or Cancel) when a request's Asynchronous
  # Indicator says the client accepts it; the operation is performed when
  # the client polls for it, so Cancel really cancels it. Pending operations
  # live in one kmipd's memory: with replicas behind a load balancer, where a
  # Poll may reach another replica, set false. Default true.
  asynchronous = true

  # What a request's KMIP Credential means. "bind": it names a user (or a
  # device) under the TLS client that sends it; objects it makes are that
  # identity's alone under KMIP's default operation policy (another identity
  # of the same TLS client gets Permission Denied, except reading public keys
  # and certificates), and objects made without a Credential stay every
  # request's. Its password is bound on first use: the first request under a
  # new identity stores a salted PBKDF2-HMAC-SHA256 hash of it (cred/ in the
  # store, in backups too), and a later one with another password is
  # Authentication Not Successful (with check_credentials, credentials_file
  # decides instead). "ignore": a Credential names no identity, every
  # object is the TLS client's as a whole. Default "bind".
  credentials = "bind"

  # PBKDF2 iterations of a new password binding (at least 1000); a binding
  # keeps the count it was made with. Each identity's password is hashed
  # once per process, then remembered as an HMAC in memory. Default 600000.
  credential_hash_iterations = 600000

  # The server's default object group (KMIP Object Group, "default" is the
  # name KMIP reserves): a Locate for a Fresh member of it that finds none
  # makes one, an AES-256 Encrypt/Decrypt key, Pre-Active. "" turns that off.
  # Default "default".
  default_object_group = "default"

  # Whether objects made without an Object Group go into the default group.
  # Clients listing all attributes then see an Object Group they never set.
  # Default false.
  assign_default_group = false
}

# Optional block.
log {
  # "trace", "debug", "info", "warn" or "error". Default "info".
  level = "info"

  # "text" or "json". Default "text".
  format = "text"
}

# Optional block: without it there is no telemetry listener. Serves plain
# HTTP /metrics (Prometheus), /healthz and /readyz; keep it on localhost or a
# management network.
telemetry {
  # host:port. Default "127.0.0.1:9696".
  address = "127.0.0.1:9696"
}

# Optional block: without it there is no admin channel. `kmipd admin status |
# backup | rotate-pkek -config FILE` talk to the running server through this
# Unix socket, created with mode 0600: whoever can open it administers kmipd.
# kmipd refuses to start if the path exists and is not a stale socket.
admin {
  socket = "/run/kmipd/admin.sock"
}

# The certification authority behind KMIP Certify and ReCertify: kmipd issues
# X.509 certificates for its clients' public keys, signed by this issuing CA.
# Optional block: without it Certify and ReCertify are not offered (Query does
# not list them; a request is answered Operation Not Supported). `kmipd dev`
# and `kmipd certs init` make a self-signed one (pki/issuer.crt, issuer.key).
#
# A client's request (a PKCS#10 Certificate Request, or an X.509 Certificate
# Subject template attribute) chooses the subject and subject alternative
# names, and its Cryptographic Usage Mask the key usage, within what the
# public key's own mask allows; this block chooses the rest. Issued
# certificates are never CAs. Use a CA dedicated to this: any client can have
# any subject certified, so do not give this CA's certificates trust they
# should not have (in particular, listener.client_ca_file should not list it
# unless certified keys are meant to become kmipd clients).
certify {
  # The issuing CA's certificate (PEM; its first certificate, which must be a
  # CA allowed to sign certificates) and private key (PEM PKCS#8, SEC 1 or
  # PKCS#1, unencrypted; keep it mode 0600). Required in the block. Both are
  # read again on SIGHUP.
  ca_cert = "/etc/kmipd/issuer.crt"
  ca_key  = "/etc/kmipd/issuer.key"

  # How long an issued certificate is valid, from the request's time (less
  # five minutes of clock-skew allowance); never beyond the CA's own
  # certificate. Default "8760h" (a year).
  validity = "8760h"

  # Extended key usages of every issued certificate, from "client_auth",
  # "server_auth", "email_protection", "code_signing", "time_stamping",
  # "ocsp_signing" and "any"; [] for none. Default ["client_auth"].
  ext_key_usage = ["client_auth"]
}
