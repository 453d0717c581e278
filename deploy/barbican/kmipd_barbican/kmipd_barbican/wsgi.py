"""A paste filter that readies a Barbican API process for native threads.

Threaded workers (gunicorn --threads, uWSGI threads, mod_wsgi threads) of
Barbican 15 hang or fail for two reasons besides the shared PyKMIP client:

- oslo.log (5.0 in Debian bookworm) sees eventlet imported -- by
  oslo.messaging, even with [queue] enable = False -- and swaps logging's
  module lock for an eventlet lock, although nothing monkey-patches threads.
  When two native threads contend for it, the waiter is woken through the
  other thread's eventlet hub ("greenlet.error: cannot switch to a different
  thread") and never runs again: the thread, and its request, hang.
- Barbican builds its policy enforcer on the first request; a second thread
  that arrives meanwhile sees it half-built and answers 500
  (PolicyNotRegistered).

Put ``threads`` in the pipeline of barbican-api-paste.ini (anywhere: paste
runs every filter factory after the app is built, before the first
request); it changes nothing on the request path:

    [filter:threads]
    paste.filter_factory = kmipd_barbican.wsgi:filter_factory

    [pipeline:barbican-api-keystone]
    pipeline = cors http_proxy_to_wsgi authtoken context threads apiapp
"""

import logging
import sys
import threading


def native_logging_locks():
    """Gives logging native locks again if oslo.log installed eventlet ones
    while eventlet does not patch threads. True if it changed anything."""
    eventlet = sys.modules.get("eventlet")
    if eventlet is None or logging.threading is threading:
        return False
    from eventlet import patcher
    if patcher.is_monkey_patched("thread"):
        return False  # an eventlet process: oslo.log's locks are right
    logging.threading = threading
    logging._lock = threading.RLock()
    logging.Handler.createLock = _create_lock
    for ref in list(logging._handlerList):
        handler = ref()
        if handler is not None:
            handler.createLock()
    return True


def _create_lock(self):
    # logging.Handler.createLock as the standard library defines it.
    self.lock = threading.RLock()
    logging._register_at_fork_reinit_lock(self)


def prepare():
    """Everything a process needs before its threads serve requests."""
    native_logging_locks()
    from barbican.common import policy
    policy.init()


def filter_factory(global_conf, **local_conf):
    prepare()

    def threads(app):
        return app
    return threads
