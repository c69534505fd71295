// Drives the official JS client (@langfuse/client, installed under scripts/node) against the
// gateway and prints what it saw as one JSON line. Run by tests/e2e/test_prompts_sdk.py.
const { LangfuseClient } = await import(process.env.LANGFUSE_CLIENT_MODULE);

const langfuse = new LangfuseClient({
  publicKey: process.env.LANGFUSE_PUBLIC_KEY,
  secretKey: process.env.LANGFUSE_SECRET_KEY,
  baseUrl: process.env.LANGFUSE_BASE_URL,
});
const name = process.env.PROMPT_NAME;
const result = {};

const created = await langfuse.prompt.create({
  name,
  prompt: "Hello {{who}}",
  labels: ["production"],
  config: { temperature: 0.1 },
});
result.createdVersion = created.version;

const fetched = await langfuse.prompt.get(name, { cacheTtlSeconds: 0 });
result.fetchedVersion = fetched.version;
result.compiled = fetched.compile({ who: "JS" });
result.config = fetched.config;

const chat = await langfuse.prompt.create({
  name: `${name}-chat`,
  type: "chat",
  prompt: [
    { role: "system", content: "You help {{who}}." },
    { type: "placeholder", name: "history" },
  ],
  labels: ["production"],
});
const chatFetched = await langfuse.prompt.get(`${name}-chat`, { type: "chat", cacheTtlSeconds: 0 });
result.chatVersion = chat.version;
result.chatCompiled = chatFetched.compile(
  { who: "JS" },
  { history: [{ role: "user", content: "hi" }] },
);

await langfuse.prompt.delete(name);
try {
  await langfuse.prompt.get(name, { cacheTtlSeconds: 0, maxRetries: 0 });
  result.afterDelete = "still there";
} catch (error) {
  result.afterDelete = error?.statusCode ?? String(error);
}
console.log(JSON.stringify(result));
