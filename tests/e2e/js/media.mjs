// Traces one observation whose input carries a base64 data URI (MEDIA_DATA_URI) with the official
// @langfuse/otel span processor, which uploads the media through the gateway's presigned URLs and
// stores a reference in its place; prints the trace and observation ids. Run by
// tests/e2e/test_media.py; module paths come from LANGFUSE_NODE_MODULES.
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
provider.register();

let traceId;
let observationId;
await tracing.startActiveObservation("js-media", async (span) => {
  traceId = tracing.getActiveTraceId();
  observationId = span.id;
  span.update({ input: { image: process.env.MEDIA_DATA_URI } });
});

// forceFlush waits for the media uploads, then exports the span.
await processor.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ traceId, observationId }));
