// The OpenAI Node SDK with OPENAI_API_KEY=dummy: the sidecar injects the real key.
import OpenAI from "openai";

const client = new OpenAI();
const completion = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Say hello" }],
});
console.log(completion.choices[0].message.content);
