"""Starting a child that Ctrl-C reaches, whoever started the tests."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` for a child the tests interrupt: SIGINT back to its default.

    A non-interactive shell starts a background job (``bash .ci/run &``) with SIGINT ignored,
    its children inherit that, and Python then installs no ``KeyboardInterrupt`` handler: the
    child would never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
