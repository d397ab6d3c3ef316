"""The benchmark protocol on Python's `websockets`: python server.py [PORT]."""
import asyncio
import json
import sys

from websockets.asyncio.server import broadcast, serve

members = set()


async def handler(socket):
    try:
        async for raw in socket:
            if not isinstance(raw, str):
                continue
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "join":
                members.add(socket)
            elif kind == "publish":
                broadcast(members, json.dumps({"type": "publish", "data": frame.get("data")}))
            elif kind == "echo":
                await socket.send(json.dumps({"type": "$reply", "id": frame.get("id"), "data": frame.get("data")}))
    finally:
        members.discard(socket)


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with serve(handler, "127.0.0.1", port) as server:
        address = next(iter(server.sockets)).getsockname()
        print(f"listening on http://{address[0]}:{address[1]}", flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
