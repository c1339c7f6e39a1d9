"""The viewers' batched send path (lmserver/media/fastsend.py) with real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc.rtp import RtpPacket
from rtcclients import Publisher, Viewer

from lmserver.media.fastsend import FastSender, fast_sender


def server_side(studio: Any, viewer: Viewer) -> Any:
    return studio.media.viewers[viewer.location.rsplit("/", 1)[1]]


def senders(studio: Any, viewer: Viewer) -> dict[str, FastSender]:
    out = {}
    for t in server_side(studio, viewer).pc.getTransceivers():
        fast = fast_sender(t.sender)
        assert fast is not None, "every viewer's sender is sent for by the fan-out"
        out[t.kind] = fast
    return out


async def test_packets_carry_per_viewer_rtp_state_and_the_negotiated_extensions(studio) -> None:
    publisher = Publisher()
    a, b = Viewer(), Viewer()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        for v in (a, b):
            assert (await v.play(studio.http, studio.base))[0] == 201
        await a.wait_frames(10)
        await b.wait_frames(10)
        va, vb = senders(studio, a)["video"], senders(studio, b)["video"]
        assert va.ssrc != vb.ssrc and va.packets > 0 and vb.packets > 0
        for fast in (va, vb):
            rtc = fast.sender
            extmap = rtc._RTCRtpSender__rtp_header_extensions_map
            last = (fast.seq - 1) & 0xFFFF
            packet = RtpPacket.parse(fast.clear_packet(last), extmap)
            assert packet.ssrc == rtc._ssrc and packet.sequence_number == last
            assert packet.payload_type == fast.pt and packet.marker == 1  # the last packet of a frame
            assert packet.extensions.mid == rtc._RTCRtpSender__mid
            assert packet.extensions.abs_send_time is not None
        # audio goes the same way (Opus, one packet per RTP packet)
        await asyncio.sleep(0.5)
        assert senders(studio, a)["audio"].packets > 0 and a.audio_count > 0
        # RTCP sender reports (A/V sync in browsers) carry this path's counters
        for _ in range(60):  # bounded: aiortc sends a report every 0.5-1.5 s
            stats = await a.pc.getStats()
            remote = [s for s in stats.values() if s.type == "remote-outbound-rtp" and s.kind == "video"]
            if remote and remote[0].packetsSent > 0:
                break
            await asyncio.sleep(0.1)
        assert remote and remote[0].packetsSent > 0 and remote[0].bytesSent > 0
        # the viewer's receiver reports echo the reports' NTP time: the server's sender estimates the round trip
        server_sender = senders(studio, a)["video"].sender
        for _ in range(60):  # bounded: a receiver report follows a sender report within ~1.5 s
            rtt = [s.roundTripTime for s in (await server_sender.getStats()).values() if s.type == "remote-inbound-rtp"]
            if rtt and rtt[0] is not None:
                break
            await asyncio.sleep(0.1)
        assert rtt and rtt[0] is not None and 0 <= rtt[0] < 1, rtt
    finally:
        await a.close()
        await b.close()
        await publisher.close()


async def test_lost_packets_are_retransmitted_on_nack_without_a_pli_storm(studio) -> None:
    publisher = Publisher()
    viewer = Viewer()
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        assert (await viewer.play(studio.http, studio.base))[0] == 201
        await viewer.wait_frames(5)
        fast = senders(studio, viewer)["video"]
        rtc = fast.sender
        plis: list[int] = []
        request_keyframe = rtc._send_keyframe

        def counted() -> None:
            plis.append(1)
            request_keyframe()

        rtc._send_keyframe = counted
        # A test hook on the viewer's socket: every 5th video datagram is lost on the way out. The Python send
        # loop sends for this viewer, a sendto per datagram (test_sendloop.py: the C loop sends the same bytes).
        fast.accel = fast.gso = False
        real_sendto, sent, dropped = fast.sendto, [0], [0]

        def lossy(data: bytes, addr: Any) -> None:
            sent[0] += 1
            if sent[0] % 5 == 0 and dropped[0] < 40:
                dropped[0] += 1
                return
            real_sendto(data, addr)

        fast.sendto = lossy  # type: ignore[method-assign]
        before = viewer.count
        for _ in range(600):  # bounded: until 40 datagrams were dropped
            if dropped[0] >= 40:
                break
            await asyncio.sleep(0.05)
        assert dropped[0] >= 40
        await viewer.wait_frames(viewer.count + 15)
        assert viewer.count - before >= 30
        assert fast.retransmitted >= 20  # the viewer's NACKs were answered from this viewer's history
        assert len(plis) <= 3, f"{len(plis)} PLIs for {dropped[0]} lost packets"
    finally:
        await viewer.close()
        await publisher.close()


async def test_viewers_join_and_leave_during_the_stream(studio) -> None:
    publisher = Publisher()
    viewers = [Viewer(), Viewer(), Viewer()]
    try:
        assert (await publisher.publish(studio.http, studio.base, studio.key))[0] == 201
        fanout = studio.media.program.fanout
        for v in viewers:
            assert (await v.play(studio.http, studio.base))[0] == 201
        for v in viewers:
            await v.wait_frames(5)
        assert len(fanout._senders["video"]) == 3 and len(fanout._senders["audio"]) == 3
        # one leaves (DELETE), one disappears (closes its peer connection), one joins
        async with studio.http.delete(studio.base + viewers[0].location) as resp:
            assert resp.status == 200
        await viewers[1].close()
        late = Viewer()
        viewers.append(late)
        assert (await late.play(studio.http, studio.base))[0] == 201
        await late.wait_frames(10)
        for _ in range(200):  # bounded: the closed peer connection is noticed (ICE/DTLS) and removed
            if len(studio.media.viewers) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(studio.media.viewers) == 2
        assert len(fanout._senders["video"]) == 2 and len(fanout._senders["audio"]) == 2
        count = viewers[2].count
        await viewers[2].wait_frames(count + 10)  # the one that stayed plays on
        await late.wait_frames(late.count + 10)
    finally:
        for v in viewers:
            await v.close()
        await publisher.close()
