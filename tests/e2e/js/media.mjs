// Traces one observation whose input carries a base64 data URI (MEDIA_DATA_URI) with the official
// @langfuse/otel span processor, which uploads the media through the gateway's presigned URLs and
// stores a reference in its place; prints the trace and observation ids. Run by
// tests/e2e/test_media.py; the setup is langfuse_otel.mjs.
import { processor, provider, tracing } from "./langfuse_otel.mjs";

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
