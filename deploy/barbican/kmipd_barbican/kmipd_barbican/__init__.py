"""Barbican plugins for threaded API workers in front of kmipd.

kmip_plugin_threadsafe (secret_store.KMIPSecretStore) is Barbican's own
kmip_plugin with one PyKMIP client per thread; the paste filter
wsgi.filter_factory readies an API process for native threads.
"""
