"""Uvicorn's h11 protocol with a deadline on a connection's first request (uvicorn times out idle connections
between requests, `timeout_keep_alive`, but not a client that opens a connection and sends its headers slowly)."""

from __future__ import annotations

from uvicorn.protocols.http.h11_impl import H11Protocol

from digitrec.serve.settings import HEADER_TIMEOUT_S


class HeaderTimeoutProtocol(H11Protocol):
    """Closes a connection whose first request's headers have not all arrived within HEADER_TIMEOUT_S."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.loop.call_later(HEADER_TIMEOUT_S, self.close_if_no_request)

    def close_if_no_request(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()
