"""Barbican's KMIPSecretStore, safe in threaded API workers.

Barbican 15's kmip_plugin builds one PyKMIP ProxyKmipClient per process and
wraps every operation in ``with self.client:``.  Two threads of one worker
(gunicorn --threads, uWSGI threads, mod_wsgi threads) then share that client:
the second ``open`` fails with "client connection already open", and two
threads can read each other's responses off the one socket, so a request may
get another project's secret.  This subclass gives every thread its own
client; everything else -- options, key-file check, conversions, errors -- is
the stock plugin's.
"""

import threading

from kmip.pie import client as kmip_client

from barbican.plugin import kmip_secret_store as kss


class KMIPSecretStore(kss.KMIPSecretStore):
    """kmip_plugin with one PyKMIP client (and connection) per thread.

    Configured exactly like kmip_plugin, from the same [kmip_plugin] section.
    """

    # Barbican records type(plugin).__module__ + "." + __name__ with every
    # secret (secret_store_metadata "plugin_name") and reads or deletes the
    # secret only through a loaded plugin of that name.  Taking the stock
    # name makes this class a drop-in: secrets stored through kmip_plugin
    # stay readable after the switch, and the other way round.  Only the
    # connection handling differs; what is stored is the same.
    __module__ = kss.KMIPSecretStore.__module__

    def __init__(self, conf=kss.CONF):
        self._local = threading.local()
        c = conf.kmip_plugin
        self._client_args = dict(
            hostname=c.host, port=c.port, cert=c.certfile, key=c.keyfile,
            ca=c.ca_certs, ssl_version=c.ssl_version, username=c.username,
            password=c.password)
        # The base class validates the configuration and assigns
        # self.client once; the setter below keeps that client for the
        # constructing thread only.
        super().__init__(conf)

    @property
    def client(self):
        """This thread's ProxyKmipClient, made on the thread's first use."""
        c = getattr(self._local, "client", None)
        if c is None:
            c = kmip_client.ProxyKmipClient(**self._client_args)
            self._local.client = c
        return c

    @client.setter
    def client(self, value):
        self._local.client = value
