// Child process for httpServe.test.ts: serves a runtime, uses it over HTTP (with an open event stream),
// closes everything and then must exit by itself: no process.exit here.
import { serve } from "../../src/http/serve.ts"
import { createRuntime } from "../../src/runtime/createRuntime.ts"
import { memoryServices } from "../runtime/support.ts"

const services = await memoryServices()
const runtime = await createRuntime({ layer: services.layer, env: {}, config: { store: { pglite: "memory" } } })
const server = await serve({ runtime, port: 0, apiKeys: [{ key_env: "CHILD_KEY", scopes: ["admin"] }], env: { CHILD_KEY: "child-secret" } })
const auth = { authorization: "Bearer child-secret", "content-type": "application/json" }
const events = await fetch(`${server.url}/v1/events`, { headers: auth })
const reader = events.body!.getReader()
const spawned = (await (await fetch(`${server.url}/v1/agents`, { method: "POST", headers: auth, body: JSON.stringify({ config: { name: "child", trustLevel: "TRUSTED", command: ["l02-agent"] } }) })).json()) as { agentId: string }
const executed = await (await fetch(`${server.url}/v1/agents/${spawned.agentId}/execute`, { method: "POST", headers: auth, body: JSON.stringify({ input: "ping" }) })).text()
const first = new TextDecoder().decode((await reader.read()).value)
console.log(JSON.stringify({ url: server.url, spawned: spawned.agentId !== undefined, done: executed.includes("event: done"), streamed: first.startsWith(": connected") }))
await server.close()
await runtime.shutdown()
await services.close()
console.log("closed")
