#!/usr/bin/env python3
"""The Anthropic SDK with ANTHROPIC_API_KEY=dummy: the sidecar injects the real key."""
import anthropic

client = anthropic.Anthropic()
message = client.messages.create(
    model="claude-sonnet-4-5",
    max_tokens=64,
    messages=[{"role": "user", "content": "Say hello"}],
)
print(message.content[0].text)
