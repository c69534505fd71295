// Traces a small agent run with the official JS packages (@langfuse/otel + @langfuse/tracing on
// the OpenTelemetry Node SDK) against the gateway and prints the trace id. Run by
// tests/e2e/test_otel.py; module paths come from LANGFUSE_NODE_MODULES.
const modules = process.env.LANGFUSE_NODE_MODULES;
const load = (name) => import(`${modules}/${name}/build/src/index.js`).catch(() =>
  import(`${modules}/${name}/dist/index.mjs`));
const { NodeTracerProvider } = await load("@opentelemetry/sdk-trace-node");
const { LangfuseSpanProcessor } = await load("@langfuse/otel");
const tracing = await load("@langfuse/tracing");

const processor = new LangfuseSpanProcessor({
  publicKey: process.env.LANGFUSE_PUBLIC_KEY,
  secretKey: process.env.LANGFUSE_SECRET_KEY,
  baseUrl: process.env.LANGFUSE_BASE_URL,
  exportMode: "immediate",
});
const provider = new NodeTracerProvider({ spanProcessors: [processor] });
// register() also installs the async context manager that active observations need.
provider.register();

let traceId;
await tracing.startActiveObservation("js-agent", async (root) => {
  traceId = tracing.getActiveTraceId();
  root.update({ input: { question: "2+2?" }, output: { answer: 4 } });
  await tracing.propagateAttributes(
    { userId: "js-user", sessionId: "js-session", tags: ["js"] },
    async () => {
      const generation = tracing.startObservation(
        "js-generation",
        { model: "gpt-4o", input: [{ role: "user", content: "2+2?" }] },
        { asType: "generation" },
      );
      generation.update({ output: "4", usageDetails: { input: 7, output: 1 } }).end();
    },
  );
}, { asType: "agent" });

await processor.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ traceId }));
