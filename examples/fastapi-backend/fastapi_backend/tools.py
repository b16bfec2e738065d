"""The tools (pretend ones, as chat-backend's: this example is about who may
call them, not what they do). Whether a tool exists is the plans' answer
(``ToolGate.offers``)."""

from typing import Any, Dict


def run(tool: str, text: str) -> Dict[str, Any]:
    """Runs ``tool`` on ``text``."""
    words = len(text.split())
    if tool == "search":
        return {"results": [f"3 documents match {words} words"]}
    if tool == "summarize":
        return {"summary": f"a text of {words} words, in one line"}
    return {"output": f"{tool} ran on {words} words"}
