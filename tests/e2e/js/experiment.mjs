// Runs an experiment on a dataset with the official JS packages (@langfuse/client's
// dataset.runExperiment, traced by @langfuse/otel on the OpenTelemetry Node SDK) and prints the
// run id and each item's trace as one JSON line. Run by tests/e2e/test_experiments_sdk.py; module
// paths come from LANGFUSE_NODE_MODULES, the dataset and run names from DATASET_NAME, RUN_NAME.
const modules = process.env.LANGFUSE_NODE_MODULES;
const load = (name) => import(`${modules}/${name}/build/src/index.js`).catch(() =>
  import(`${modules}/${name}/dist/index.mjs`));
const { NodeTracerProvider } = await load("@opentelemetry/sdk-trace-node");
const { LangfuseSpanProcessor } = await load("@langfuse/otel");
const { LangfuseClient } = await load("@langfuse/client");

const credentials = {
  publicKey: process.env.LANGFUSE_PUBLIC_KEY,
  secretKey: process.env.LANGFUSE_SECRET_KEY,
  baseUrl: process.env.LANGFUSE_BASE_URL,
};
const processor = new LangfuseSpanProcessor({ ...credentials, exportMode: "immediate" });
const provider = new NodeTracerProvider({ spanProcessors: [processor] });
provider.register();
const langfuse = new LangfuseClient(credentials);

const dataset = await langfuse.dataset.get(process.env.DATASET_NAME);
const result = await dataset.runExperiment({
  name: "doubling",
  runName: process.env.RUN_NAME,
  task: async ({ input }) => input.n * 2,
  evaluators: [async ({ output, expectedOutput }) => ({
    name: "exact", value: output === expectedOutput ? 1 : 0,
  })],
});

await processor.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({
  datasetRunId: result.datasetRunId,
  traces: result.itemResults.map((r) => ({ itemId: r.item.id, traceId: r.traceId })),
}));
