"""A loopback fake of Discord (gateway v10 and REST API v10) for the real discord.py 2.7 client.

No Discord server can be reached from the tests, and dpytest cannot do slash commands, buttons or
ephemeral replies, so this package plays Discord itself on 127.0.0.1: the bot under test is an
unmodified ``discord.Client`` whose two URLs are redirected (``DiscordFake.pointed_at()`` sets
``discord.http.Route.BASE`` and ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``).

What it fakes, with Discord's payload shapes and error codes:

- one guild (owner, @everyone, roles with permission bits, members whose names may be any text),
  text channels made on demand, DM channels, the bot user and its application id;
- the gateway: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, RESUME with replay of missed
  dispatches → RESUMED, INVALID_SESSION, RECONNECT, close codes, privileged intents (4014),
  REQUEST_GUILD_MEMBERS, MESSAGE_CREATE/UPDATE/DELETE for the bot's own messages, INTERACTION_CREATE;
- REST: identity and application, bulk command registration (global and guild), interaction
  callbacks (types 4–9) with ``with_response``, followups and ``@original`` through the interaction
  webhook, channel messages (send, get, edit, delete, history), DM channels, typing, members;
  files sent with any of these (discord.py's multipart form: ``payload_json`` plus ``files[n]``),
  kept with their bytes (``Message.files``, ``Message.file(name)``), at most 10 within the size limit;
- Discord's rules a bot relies on: one initial callback per interaction (then 400, code 40060),
  the 3-second deadline (recorded as ``late``; ``reject_late_responses`` answers 404 10062 as
  Discord does), 15-minute tokens (401 50027 after), ``nonce`` + ``enforce_nonce`` deduplication,
  who a message really pings (``Message.pings``: content + allowed_mentions + permissions; edits and
  ephemeral messages ping nobody), 2000-character content, empty messages, missing permissions,
  closed DMs (403 50007);
- faults: 429s shaped like Discord's (``Via`` header included, or discord.py would not retry),
  500/502 (optionally after the request took effect), stalled routes, RECONNECT, INVALID_SESSION,
  closing the socket with a code, a gateway that stops acknowledging heartbeats.

What it does not fake: more than one guild, sharding, voice, threads and forums, reactions,
a CDN to download attachments from (tests read ``Message.files``), channel permission overwrites (permissions
are guild-level), real rate-limit buckets (only injected 429s), zlib/zstd compression (the client
asks for it; the fake answers in plain text frames, which discord.py accepts), ETF encoding,
presences, and Discord's markdown rules for mentions inside code blocks (counted as pings: stricter).

Typical use::

    async with DiscordFake() as fake:
        with fake.pointed_at():
            client = MyBot(...)
            task = asyncio.create_task(client.start(fake.token))
            await fake.wait_ready()
            handle = await fake.slash(ada, "circles", "circle", "start", {"script": "check-in"})
            reply = await handle.response()
            assert reply.ephemeral
"""

from tests.discord_fake.fake import SEND_MESSAGE, CommandUnavailable, DiscordFake, discord_py_pointed_at
from tests.discord_fake.rest import Fault, Stall
from tests.discord_fake.state import (
    EPHEMERAL,
    LOADING,
    Callback,
    CallbackType,
    Channel,
    Edit,
    Interaction,
    InteractionType,
    Member,
    Message,
    Perm,
    Pings,
    RestCall,
    Role,
    TimedOut,
    Upload,
    User,
    compute_pings,
)

__all__ = [
    "EPHEMERAL",
    "LOADING",
    "SEND_MESSAGE",
    "Callback",
    "CallbackType",
    "Channel",
    "CommandUnavailable",
    "DiscordFake",
    "Edit",
    "Fault",
    "Interaction",
    "InteractionType",
    "Member",
    "Message",
    "Perm",
    "Pings",
    "RestCall",
    "Role",
    "Stall",
    "TimedOut",
    "Upload",
    "User",
    "compute_pings",
    "discord_py_pointed_at",
]
