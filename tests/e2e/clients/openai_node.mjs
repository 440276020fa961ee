// The official OpenAI Node SDK with OPENAI_API_KEY=dummy: one plain and one streamed chat
// completion. Prints one JSON line. Run from the directory holding node_modules: an ES
// module resolves `import "openai"` from its own location (NODE_PATH is for require()).
import OpenAI from "openai";
import { VERSION } from "openai/version";

const client = new OpenAI();
const messages = [{ role: "user", content: "Say hello" }];

const completion = await client.chat.completions.create({ model: "gpt-4o-mini", messages });

const pieces = [];
const arrivals = [];
const stream = await client.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
for await (const chunk of stream) {
  const text = chunk.choices[0]?.delta?.content;
  if (text) {
    pieces.push(text);
    arrivals.push(performance.now() / 1000);
  }
}

console.log(
  JSON.stringify({
    sdk: `openai-node ${VERSION}`,
    complete: completion.choices[0].message.content,
    stream: pieces.join(""),
    stream_events: pieces.length,
    stream_spread: arrivals.length ? arrivals[arrivals.length - 1] - arrivals[0] : 0,
  }),
);
