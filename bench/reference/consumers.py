"""The textbook consumer: MQTT packets in over a WebSocket, echoes and room fan-out out."""

import hashlib
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from gate.mqtt import (
    ConnAck,
    Connect,
    Decoder,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    ProtocolError,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode,
    encode_publish,
)

SUBPROTOCOLS = ("mqtt", "mqttv3.1")


def group_of(name: str) -> str:
    """A channel-layer group for a topic: group names allow only [a-zA-Z0-9._-]."""
    return "room." + hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        offered = [p for p in self.scope["subprotocols"] if p in SUBPROTOCOLS]
        self.decoder = Decoder()
        self.rooms: set[str] = set()
        await self.accept(subprotocol=offered[0] if offered else None)

    async def disconnect(self, code: int) -> None:
        for room in self.rooms:
            await self.channel_layer.group_discard(room, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.decoder.receive_data(bytes_data or b"")
        try:
            for packet in self.decoder.packets():
                await self.handle(packet)
        except ProtocolError:
            await self.close()

    async def handle(self, packet: Packet) -> None:
        if isinstance(packet, Connect):
            await self.send(bytes_data=encode(ConnAck(0)))
        elif isinstance(packet, PingReq):
            await self.send(bytes_data=encode(PingResp()))
        elif isinstance(packet, Subscribe):
            for topic_filter, _qos in packet.topics:
                room = group_of(topic_filter)
                self.rooms.add(room)
                await self.channel_layer.group_add(room, self.channel_name)
            granted = (0,) * len(packet.topics)
            await self.send(bytes_data=encode(SubAck(packet.packet_id, granted)))
        elif isinstance(packet, Unsubscribe):
            for topic_filter in packet.topics:
                room = group_of(topic_filter)
                self.rooms.discard(room)
                await self.channel_layer.group_discard(room, self.channel_name)
            await self.send(bytes_data=encode(UnsubAck(packet.packet_id)))
        elif isinstance(packet, Publish):
            await self.publish(packet)
        elif isinstance(packet, Disconnect):
            await self.close()

    async def publish(self, packet: Publish) -> None:
        if packet.qos == 1 and packet.packet_id is not None:
            await self.send(bytes_data=encode(PubAck(packet.packet_id)))
        if packet.topic.startswith("room/"):
            event = {"type": "room.message", "topic": packet.topic, "payload": packet.payload}
            await self.channel_layer.group_send(group_of(packet.topic), event)
        else:
            await self.send(bytes_data=encode_publish(packet.topic, packet.payload))

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send(bytes_data=encode_publish(event["topic"], event["payload"]))
