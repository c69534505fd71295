// The official JS tracing setup the scripts share: @langfuse/otel's span processor on the
// OpenTelemetry Node SDK, sending to the gateway in LANGFUSE_BASE_URL with the stack's keys.
// Module paths come from LANGFUSE_NODE_MODULES.
const modules = process.env.LANGFUSE_NODE_MODULES;
const load = (name) => import(`${modules}/${name}/build/src/index.js`).catch(() =>
  import(`${modules}/${name}/dist/index.mjs`));
const { NodeTracerProvider } = await load("@opentelemetry/sdk-trace-node");
const { LangfuseSpanProcessor } = await load("@langfuse/otel");
export const tracing = await load("@langfuse/tracing");

export const processor = new LangfuseSpanProcessor({
  publicKey: process.env.LANGFUSE_PUBLIC_KEY,
  secretKey: process.env.LANGFUSE_SECRET_KEY,
  baseUrl: process.env.LANGFUSE_BASE_URL,
  exportMode: "immediate",
});
export const provider = new NodeTracerProvider({ spanProcessors: [processor] });
// register() also installs the async context manager that active observations need.
provider.register();
