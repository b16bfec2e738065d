"""``GET /ws``: the chat over WebSocket (CONTRACT §6).

Everything about the token — the handshake, ``auth.expiring`` /
``auth.refresh``, closing on expiry (4401) and revocation (4403), origins,
per-user connection limits, size limits, shutdown (1001) — is the SDK's
(``tollgate.asgi`` over the Rust supervisor); this module only answers the
chat's own messages, exactly as chat-backend's ``ws.rs``:

- ``{"type":"chat","text":…}`` → ``{"type":"chat.reply","text":…}``;
- ``{"type":"tool.call","id":…,"tool":…,"input"?:…}`` →
  ``{"type":"tool.result","id":…,"tool":…,"result":…}``, or
  ``{"type":"error","id":…,"code":…,"error_description":…}`` (plus
  ``retry_after_ms`` for ``rate_limited``). The same ``ToolGate`` as
  ``POST /api/tools/{tool}``: permissions, rates and counts are shared.

Any other ``type``, or a member of the wrong shape (a ``chat`` without a
string ``text``, a ``tool.call`` without a string ``tool`` or with an
``input`` that is not a string), gets the SDK's
``{"type":"error","code":"invalid_message"}`` (CONTRACT §6: a newer client
is never cut off by an older server). A refused message never closes the
connection.
"""

from typing import Any, Awaitable, Callable, Dict, Optional

import tollgate
import tollgate.asgi
from tollgate.asgi import invalid_message

from . import tools

Message = Dict[str, Any]


def session(gate: tollgate.ToolGate) -> Callable[[tollgate.asgi.Connection], Awaitable[None]]:
    """The handler of one connection."""

    async def handle(connection: tollgate.asgi.Connection) -> None:
        async for message in connection:
            # The principal of the latest token: a refresh may change the plan.
            principal = connection.principal
            if principal is None:
                return
            if not await connection.send(await answer(gate, principal, message)):
                return

    return handle


async def answer(gate: tollgate.ToolGate, principal: tollgate.Principal, message: Message) -> Message:
    """The answer to one message (a JSON object with a string ``type``)."""
    kind = message["type"]
    if kind == "chat":
        text = message.get("text")
        if not isinstance(text, str):
            return invalid_message(message, "a chat message needs a string `text`")
        return {"type": "chat.reply", "text": text}
    if kind == "tool.call":
        return await call_tool(gate, principal, message)
    return invalid_message(message, "the message type is not one of chat, tool.call, auth.refresh")


async def call_tool(gate: tollgate.ToolGate, principal: tollgate.Principal, message: Message) -> Message:
    tool = message.get("tool")
    if not isinstance(tool, str):
        return invalid_message(message, "a tool call needs a string `tool`")
    text = message.get("input", "")
    if not isinstance(text, str):
        return invalid_message(message, "a tool call's `input` is a string")
    if not gate.offers(tool):
        return error(message, "unknown_tool", "no plan offers this tool")
    try:
        await gate.admit_async(principal, tool)
    except tollgate.AuthError as err:
        answer = error(message, err.code, err.description)
        if err.retry_after_ms is not None:
            answer["retry_after_ms"] = err.retry_after_ms
        return answer
    answer = {"type": "tool.result", "tool": tool, "result": tools.run(tool, text)}
    if "id" in message:
        answer["id"] = message["id"]
    return answer


def error(message: Message, code: str, description: str) -> Message:
    """``{"type":"error","id"?,"code","error_description"}``."""
    answer: Message = {"type": "error"}
    if "id" in message:
        answer["id"] = message["id"]
    answer["code"] = code
    answer["error_description"] = description
    return answer
