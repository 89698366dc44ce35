"""One client-server request through the gateway: route it, forward it with its body
streaming, relay the answer, and learn or forget tokens on the way."""

from __future__ import annotations

import logging
import re
from typing import Any

import attr
from twisted.internet import defer

from synapse_base_cs_url.core.json_dict import json_object
from synapse_base_cs_url.portal import errors
from synapse_base_cs_url.portal.account_steps import report_step, step_for
from synapse_base_cs_url.portal.client_paths import (
    SYNC_PATH,
    ClientEndpoint,
    Learns,
    gateway_endpoint,
    routed_by_body,
)
from synapse_base_cs_url.portal.config.gateway import GatewaySettings
from synapse_base_cs_url.portal.gateway.destination import (
    Destination,
    Destinations,
)
from synapse_base_cs_url.portal.gateway.relay import Relay
from synapse_base_cs_url.portal.gateway.upload_stream import UploadStream, UploadTooLarge
from synapse_base_cs_url.portal.metrics import PortalMetrics
from synapse_base_cs_url.portal.reactor import Clock
from synapse_base_cs_url.portal.upstream.bodies import AgentResponse, discard_body, read_body
from synapse_base_cs_url.portal.upstream.client import Upstream
from synapse_base_cs_url.portal.upstream.headers import forward_headers, relay_headers
from synapse_base_cs_url.portal.web.request import PortalRequest

logger = logging.getLogger("synapse_base_cs_url.portal")

#: Answers the gateway reads whole to learn from (small JSON: registration, refresh).
LEARN_LIMIT = 64 * 1024


@attr.s(auto_attribs=True, frozen=True, slots=True, kw_only=True)
class Forwarding:
    """What every exchange of one gateway uses; built again on reload."""

    settings: GatewaySettings
    upstream: Upstream
    destinations: Destinations
    metrics: PortalMetrics
    clock: Clock


def timeout_for(settings: GatewaySettings, path: bytes, query: bytes) -> float:
    """Seconds until the answer must start: a /sync as long as the client asked, plus a
    margin; anything else ``timeouts.client_api``."""
    if SYNC_PATH.fullmatch(path):
        match = re.search(rb"(?:^|&)timeout=(\d{1,9})(?:&|$)", query)
        if match is not None:
            return int(match.group(1)) / 1000 + settings.long_poll_margin
    return settings.client_api_timeout


class Exchange:
    """One gateway request and its homeserver's answer. An exchange started before its body
    arrived is that body's :class:`~synapse_base_cs_url.portal.web.body_sink.BodySink`: it
    owns the :class:`UploadStream` the body goes through."""

    def __init__(
        self,
        forwarding: Forwarding,
        request: PortalRequest,
        method: bytes,
        uri: bytes,
        body: UploadStream | bytes | None,
    ) -> None:
        self.forwarding = forwarding
        self.request = request
        self.method = method
        self.uri = uri
        self.body = body
        self.started = forwarding.clock.seconds()
        self.target: Destination | None = None
        self.responding = False
        self.counted = False
        self.sent: defer.Deferred[AgentResponse] = defer.ensureDeferred(self._send())
        self.sent.addErrback(self._send_failed)

    async def _send(self) -> AgentResponse:
        forwarding, request = self.forwarding, self.request
        path, _, query = self.uri.partition(b"?")
        client_ip, scheme = request.client_ip, request.scheme
        raw_body = self.body if isinstance(self.body, bytes) else None
        self.target = await forwarding.destinations.route(
            self.method,
            path,
            query,
            authorization=request.header(b"authorization"),
            client_ip=client_ip,
            body=raw_body,
        )
        if isinstance(self.body, UploadStream) and self.body.too_large:
            raise errors.too_large(forwarding.settings.max_upload_size)
        # An answer the gateway reads to learn from is asked for uncompressed.
        headers = forward_headers(
            request.headers,
            client_ip=client_ip,
            scheme=scheme,
            keep_encoding=not routed_by_body(self.method, path),
        )
        body: Any = self.body  # an UploadStream is an IBodyProducer (a zope interface)
        return await forwarding.upstream.open(
            self.target.homeserver,
            self.method,
            self.uri,
            headers=headers,
            body=body,
            timeout=timeout_for(forwarding.settings, path, query),
        )

    # -- BodySink: the request hands its body over as it arrives ----------------------------

    def feed(self, data: bytes) -> None:
        if isinstance(self.body, UploadStream):
            self.body.feed(data)

    def finish(self) -> None:
        if isinstance(self.body, UploadStream):
            self.body.finish()

    def abandon(self) -> None:
        """The client left: stop sending (closing the connection to the homeserver, if the
        request is still on its way) and drop what is left of the body."""
        if isinstance(self.body, UploadStream):
            self.body.discard()
        if self.responding:
            return  # respond() has the answer and deals with the client leaving
        self._count(errors.CLIENT_CLOSED)  # gone in the middle of its upload
        if not self.sent.called:
            self.sent.cancel()
        # An answer nobody will read: close its connection; a failure nobody will answer.
        self.sent.addCallbacks(discard_body, lambda failure: None)

    def _send_failed(self, failure: Any) -> Any:
        # Nobody will read the rest of an upload that could not be sent.
        if isinstance(self.body, UploadStream):
            self.body.discard()
        return failure

    async def respond(self) -> None:
        self.responding = True
        request = self.request
        finished = request.when_finished()
        finished.addErrback(lambda _: self.sent.cancel())
        try:
            response = await self.sent
        except UploadTooLarge:
            too_large = errors.too_large(self.forwarding.settings.max_upload_size)
            self._count(too_large.status)
            raise too_large from None
        except (errors.MatrixError, errors.Answered) as e:
            self._count(e.status)
            raise
        except defer.CancelledError:
            self._count(errors.CLIENT_CLOSED)  # gone before the answer started
            raise
        assert self.target is not None
        request.set_status(response.code)
        request.add_headers(relay_headers(response.headers, keep_length=True))
        if isinstance(response.length, int) and self.method != b"HEAD" and response.code != 204:
            # The Agent keeps the answer's length apart from its headers: pass it on, so
            # the client gets the body as the homeserver framed it (not chunked).
            request.set_header(b"Content-Length", str(response.length).encode())
        endpoint = gateway_endpoint(self.method, self.uri.partition(b"?")[0])
        if endpoint is not None and endpoint.reads_answer(response.code):
            await self._learn_and_write(response, endpoint)
        else:
            await self._stream(response)
            forgets = endpoint is not None and endpoint.learns is Learns.FORGETS
            if response.code == 200 and forgets and self.target.key:
                await self.forwarding.destinations.forget(self.target.key)
        self._count(response.code)

    async def _learn_and_write(self, response: AgentResponse, endpoint: ClientEndpoint) -> None:
        assert self.target is not None
        data = await read_body(response, LEARN_LIMIT)
        answer = json_object(data)
        name = self.target.homeserver.name
        try:
            if answer is not None and response.code == 200:
                await self.forwarding.destinations.learn_answer(answer, name)
                if endpoint.learns is Learns.REGISTRATION:
                    await self.forwarding.destinations.registered(answer, name)
            elif answer is not None and response.code == 401:
                session = answer.get("session")
                if isinstance(session, str) and session:
                    await self.forwarding.destinations.follow_registration(
                        session, name, self._asked_username(), self.request.client_ip
                    )
        except errors.MatrixError as e:
            # The homeserver did it (an account made, a token refreshed): the client must
            # get the answer; the token is found again by a lookup when used.
            logger.warning("client-api: could not remember where a token belongs: %s", e.message)
        self.request.set_header(b"Content-Length", str(len(data)).encode())
        self.request.write_part(data)
        self.request.end()

    def _asked_username(self) -> str | None:
        """The ``username`` this registration step asked for (its body was read whole)."""
        body = json_object(self.body) if isinstance(self.body, bytes) else None
        username = body.get("username") if body is not None else None
        return username if isinstance(username, str) and username else None

    async def _stream(self, response: AgentResponse) -> None:
        request = self.request
        relay = Relay(request, self.forwarding.clock, self.forwarding.settings.client_api_timeout)
        response.deliverBody(relay)
        gone = request.when_finished()
        gone.addErrback(lambda _: relay.abort())
        try:
            await relay.done
        except Exception as e:
            if request.client_gone:
                self._count(errors.CLIENT_CLOSED)  # gone in the middle of the answer
            logger.info(
                "client-api %s %s: the answer broke off (%s)",
                self.method.decode("ascii", "replace"),
                self.uri.partition(b"?")[0].decode("utf-8", "replace"),
                type(e).__name__,
            )
            request.abort_connection()
            return
        finally:
            request.stream_done()
        request.end()

    def _count(self, status: int) -> None:
        """Once per exchange: the status the client got (499 if it left first)."""
        if self.counted:
            return
        self.counted = True
        target = self.target
        homeserver = target.homeserver.name if target else "-"
        route = target.route if target else "-"
        metrics = self.forwarding.metrics
        seconds = self.forwarding.clock.seconds() - self.started
        metrics.client_api(homeserver, route, status, seconds)
        step = step_for(self.method, self.uri.partition(b"?")[0])
        if step is not None:  # a registration or password reset step, counted as redirected
            report_step(metrics, step[0].name, route, homeserver, status)
