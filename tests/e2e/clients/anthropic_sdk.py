#!/usr/bin/env python3
"""The official Anthropic Python SDK with ANTHROPIC_API_KEY=dummy: one plain and one
streamed message. Prints one JSON line."""
import json
import time

import anthropic

client = anthropic.Anthropic()
messages = [{"role": "user", "content": "Say hello"}]

message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages)

pieces, arrivals = [], []
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=messages) as stream:
    for text in stream.text_stream:
        pieces.append(text)
        arrivals.append(time.monotonic())
    final = stream.get_final_message()

print(
    json.dumps(
        {
            "sdk": "anthropic-python " + anthropic.__version__,
            "complete": message.content[0].text,
            "stream": "".join(pieces),
            "stream_events": len(pieces),
            # Seconds between the first and the last streamed piece (see openai_sdk.py).
            "stream_spread": arrivals[-1] - arrivals[0] if arrivals else 0.0,
            "stop_reason": final.stop_reason,
        }
    )
)
