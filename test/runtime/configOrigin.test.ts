// The trust boundary from embedding code: its own configs may name explicit endpoints, configs it
// forwards from elsewhere are checked with `origin: "remote"`, and its own secret store feeds the
// operator's declared endpoints.
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { createRuntime, type L02Runtime } from "../../src/runtime/createRuntime.ts"
import { layerMemory as secretsMemory } from "../../src/services/SecretStore.ts"
import { memoryServices } from "./support.ts"

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** An OpenAI chat server answering "ok", recording the Authorization headers it gets. */
const chatServer = async () => {
  const authorizations: Array<string> = []
  const server = createServer((req, res) => {
    authorizations.push(String(req.headers.authorization))
    req.resume()
    req.on("end", () => {
      const chunk = (delta: unknown, finish: string | null) => `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
      res.writeHead(200, { "content-type": "text/event-stream" })
      res.end(`${chunk({ role: "assistant", content: "ok" }, null)}${chunk({}, "stop")}data: [DONE]\n\n`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, authorizations }
}

const start = async (options: { config?: Record<string, Record<string, unknown>>; secrets?: Record<string, string>; env?: Record<string, string> } = {}): Promise<L02Runtime> => {
  const services = await memoryServices()
  const runtime = await createRuntime({
    layer: services.layer,
    env: options.env ?? {},
    config: { store: { pglite: "memory" }, runtime: { runtime_id: "rt-origin" }, ...options.config },
    ...(options.secrets === undefined ? {} : { secrets: secretsMemory(options.secrets) })
  }).catch(async (error: unknown) => {
    await services.close()
    throw error
  })
  cleanups.push(async () => {
    await runtime.shutdown()
    await services.close()
  })
  return runtime
}

describe("config origin in the embedding API", () => {
  it("checks a forwarded config like the HTTP API does, and leaves the embedder's own explicit endpoints alone", async () => {
    const runtime = await start()
    const explicit = { name: "mine", trustLevel: "TRUSTED", model: { provider: "openai-chat", model: "m", baseUrl: "http://127.0.0.1:9/v1", apiKeyEnv: "HOME" } }
    await expect(runtime.spawn(explicit, undefined, { origin: "remote" })).rejects.toMatchObject({ code: "E2004", key: "model.apiKeyEnv" })
    expect(await runtime.list()).toEqual([])
    const own = await runtime.spawn(explicit)
    expect(own.state).toBe("running")
  })

  it("runs a declared endpoint with a key from the embedder's own secret store", async () => {
    const chat = await chatServer()
    const runtime = await start({
      secrets: { vault: "sk-from-the-embedders-vault" },
      config: { execution: { models: { local: { provider: "openai-chat", base_url: chat.url, model: "m", api_key_secret: "vault" } } } }
    })
    const { agentId } = await runtime.spawn({ name: "declared", trustLevel: "TRUSTED", model: { endpoint: "local" } }, undefined, { origin: "remote" })
    const events: Array<{ type: string; text?: string }> = []
    for await (const e of runtime.execute(agentId, "hi")) events.push(e as never)
    expect(chat.authorizations).toEqual(["Bearer sk-from-the-embedders-vault"])
    expect(events.filter((e) => e.type === "text").map((e) => e.text).join("")).toBe("ok")
  })

  it("refuses to start when an endpoint names a secret its store lacks; a declared variable that is unset refuses the spawn (E2000 naming it), and one unset after the spawn fails the step", async () => {
    const chat = await chatServer()
    const models = { local: { provider: "openai-chat", base_url: chat.url, model: "m", api_key_secret: "vault" } }
    await expect(start({ secrets: {}, config: { execution: { models } } })).rejects.toMatchObject({ code: "E2000", key: "execution.models.local.api_key_secret" })
    const env: Record<string, string> = {}
    const runtime = await start({ env, config: { secrets: { vault: { env: "UNSET_VAULT_KEY" } }, execution: { models } } })
    // Checked when the agent is spawned: nothing is created for an agent whose key is missing.
    await expect(runtime.spawn({ name: "declared", trustLevel: "TRUSTED", model: { endpoint: "local" } })).rejects.toMatchObject({
      code: "E2000",
      key: "secrets.vault.env",
      message: expect.stringContaining("UNSET_VAULT_KEY")
    })
    expect(await runtime.list()).toEqual([])
    // Set at the spawn, gone by the step: the step says so.
    env.UNSET_VAULT_KEY = "sk-briefly"
    const { agentId } = await runtime.spawn({ name: "declared", trustLevel: "TRUSTED", model: { endpoint: "local" } })
    delete env.UNSET_VAULT_KEY
    const run = async () => {
      for await (const _ of runtime.execute(agentId, "hi")) void _
    }
    await expect(run()).rejects.toMatchObject({ code: "E2000", key: "secrets.vault.env", message: expect.stringContaining("UNSET_VAULT_KEY") })
    expect(chat.authorizations).toEqual([])
  })
})
