#!/usr/bin/env python3
"""The official OpenAI Python SDK with OPENAI_API_KEY=dummy: one plain and one streamed
chat completion. Prints one JSON line; exits non-zero if the stream was not streamed."""
import json
import time

import openai

client = openai.OpenAI()
messages = [{"role": "user", "content": "Say hello"}]

completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

pieces, arrivals = [], []
stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
        arrivals.append(time.monotonic())

result = {
    "sdk": "openai-python " + openai.__version__,
    "complete": completion.choices[0].message.content,
    "stream": "".join(pieces),
    "stream_events": len(pieces),
    # Seconds between the first and the last streamed piece: near zero if something on
    # the way buffered the whole response.
    "stream_spread": arrivals[-1] - arrivals[0] if arrivals else 0.0,
}
print(json.dumps(result))
