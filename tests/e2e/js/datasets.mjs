// Drives the official JS client (@langfuse/client, installed under scripts/node) through datasets,
// items and run items against the gateway; prints what it saw as one JSON line. Run by
// tests/e2e/test_datasets_sdk.py.
const { LangfuseClient } = await import(process.env.LANGFUSE_CLIENT_MODULE);

const langfuse = new LangfuseClient({
  publicKey: process.env.LANGFUSE_PUBLIC_KEY,
  secretKey: process.env.LANGFUSE_SECRET_KEY,
  baseUrl: process.env.LANGFUSE_BASE_URL,
});
const name = process.env.DATASET_NAME;
const itemId = process.env.ITEM_ID;
const traceId = process.env.TRACE_ID;
const result = {};

await langfuse.api.datasets.create({ name, description: "from js", metadata: { sdk: "js" } });
// JS leaves unset keys out of the body.
await langfuse.dataset.createItem({ datasetName: name, id: itemId, input: { n: 1 }, expectedOutput: 2 });
const updated = await langfuse.dataset.createItem({ datasetName: name, id: itemId, metadata: { v: 2 } });
result.updated = { input: updated.input, expectedOutput: updated.expectedOutput, metadata: updated.metadata };
await langfuse.dataset.createItem({ datasetName: name, input: { n: 2 } });

const dataset = await langfuse.dataset.get(name, { fetchItemsPageSize: 1 });
result.datasetId = dataset.id;
result.datasetName = dataset.name;
result.itemInputs = dataset.items.map((item) => item.input);
result.mediaReferences = dataset.items.map((item) => item.mediaReferences);

// `link` reads the trace and span ids from an OpenTelemetry span's context.
const item = dataset.items.find((candidate) => candidate.id === itemId);
const span = { otelSpan: { spanContext: () => ({ traceId, spanId: "00f067aa0ba902b7" }) } };
const linked = await item.link(span, "js run", { description: "js run", metadata: { model: "m" } });
result.runItem = { datasetRunId: linked.datasetRunId, datasetRunName: linked.datasetRunName, traceId: linked.traceId };

const runItems = await langfuse.api.datasetRunItems.list({ datasetId: dataset.id, runName: "js run" });
result.listedRunItems = runItems.data.map((runItem) => runItem.datasetItemId);
const run = await langfuse.api.datasets.getRun(name, "js run");
result.run = { id: run.id, description: run.description, metadata: run.metadata, items: run.datasetRunItems.length };
const runs = await langfuse.api.datasets.getRuns(name);
result.runs = runs.data.map((listed) => listed.name);
console.log(JSON.stringify(result));
