// Traces a small agent run with the official JS packages (@langfuse/otel + @langfuse/tracing on
// the OpenTelemetry Node SDK) against the gateway and prints the trace id. Run by
// tests/e2e/test_otel.py; the setup is langfuse_otel.mjs.
import { processor, provider, tracing } from "./langfuse_otel.mjs";

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
