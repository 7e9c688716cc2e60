// The trust boundary of an agent config, as pure checks: what a config from HTTP may name, the URL
// allowlist's matching, which hosts are internal, and the configuration's own references.
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { AgentConfig } from "../../src/domain/AgentConfig.ts"
import { checkDeclarations, checkReferences, type DeclaredResources, isInternalHost, urlAllowed } from "../../src/domain/ConfigReferences.ts"
import { loadConfigSync } from "../../src/runtime/loadConfig.ts"

const decode = (raw: unknown) => Schema.decodeUnknownSync(AgentConfig)(raw, { onExcessProperty: "error" })

const declared: DeclaredResources = {
  models: {
    openai: { provider: "openai-chat", base_url: "https://api.openai.com/v1", model: "gpt-4.1", models: ["gpt-4.1", "gpt-4.1-mini"], api_key_secret: "openai" },
    local: { provider: "openai-chat", base_url: "http://127.0.0.1:11434/v1" }
  },
  mcpServers: { github: { url: "https://mcp.example.com/github" } },
  allowedUrls: ["https://models.example.com/v1", "http://10.1.2.3:8000"]
}

const withModel = (model: Record<string, unknown>) => decode({ name: "a", model })

describe("agent config references", () => {
  it("accepts declared names from anywhere, and checks the model id against the endpoint", () => {
    expect(checkReferences(withModel({ endpoint: "openai" }), declared, "remote")).toBeUndefined()
    expect(checkReferences(withModel({ endpoint: "openai", model: "gpt-4.1-mini" }), declared, "remote")).toBeUndefined()
    expect(checkReferences(withModel({ endpoint: "openai", model: "o3" }), declared, "remote")).toMatchObject({ code: "E2005", key: "model.model" })
    expect(checkReferences(withModel({ endpoint: "local" }), declared, "embedding")).toMatchObject({ code: "E2005", key: "model.model" })
    expect(checkReferences(withModel({ endpoint: "nope", model: "m" }), declared, "embedding")).toMatchObject({ code: "E2005", key: "model.endpoint" })
    const mcp = (server: string) => withModel({ provider: "scripted", model: "s", mcp: [{ name: "x", server }] })
    expect(checkReferences(mcp("github"), declared, "remote")).toBeUndefined()
    expect(checkReferences(mcp("gitlab"), declared, "embedding")).toMatchObject({ code: "E2005", key: "model.mcp[0].server" })
  })

  it("counts only declared names, never what every object has (toString, __proto__, constructor)", () => {
    for (const name of ["toString", "__proto__", "constructor", "hasOwnProperty"]) {
      expect(checkReferences(withModel({ endpoint: name, model: "m" }), declared, "embedding"), name).toMatchObject({ code: "E2005", key: "model.endpoint" })
      expect(checkReferences(withModel({ provider: "scripted", model: "s", mcp: [{ name: "x", server: name }] }), declared, "embedding"), name)
        .toMatchObject({ code: "E2005", key: "model.mcp[0].server" })
    }
  })

  it("refuses host files, host variables and unlisted URLs from a remote config, naming the key; embedding code keeps them", () => {
    const cases: ReadonlyArray<[Record<string, unknown>, string]> = [
      [{ provider: "openai-chat", model: "m", baseUrl: "https://models.example.com/v1", apiKeyFile: "/etc/hostname" }, "model.apiKeyFile"],
      [{ provider: "openai-chat", model: "m", baseUrl: "https://models.example.com/v1", apiKeyEnv: "PATH" }, "model.apiKeyEnv"],
      [{ provider: "openai-chat", model: "m", baseUrl: "https://evil.example.net/v1" }, "model.baseUrl"],
      [{ provider: "openai-chat", model: "m", baseUrl: "https://models.example.com/v10" }, "model.baseUrl"],
      [{ provider: "openai-chat", model: "m", baseUrl: "http://models.example.com/v1" }, "model.baseUrl"],
      [{ provider: "openai-chat", model: "m", baseUrl: "https://user:pw@models.example.com/v1" }, "model.baseUrl"],
      [{ provider: "scripted", model: "s", mcp: [{ name: "x", transport: { type: "http", url: "http://169.254.169.254/latest/meta-data" } }] }, "model.mcp[0].transport.url"]
    ]
    for (const [model, key] of cases) {
      const config = withModel(model)
      expect(checkReferences(config, declared, "remote"), key).toMatchObject({ code: "E2004", key })
      if (key !== "model.baseUrl" || !String(model.baseUrl).includes("@")) expect(checkReferences(config, declared, "embedding"), key).toBeUndefined()
    }
    // A stdio server runs in the sandbox: its command is the sandbox's, not the host's.
    const stdio = withModel({ provider: "scripted", model: "s", mcp: [{ name: "x", transport: { type: "stdio", command: "sh", args: ["-c", "id"] } }] })
    expect(checkReferences(stdio, declared, "remote")).toBeUndefined()
  })

  it("says an internal address points into the supervisor's network, for every spelling of one", () => {
    for (const url of [
      "http://127.0.0.1:8080/", "http://localhost/", "http://[::1]/", "http://2130706433/", "http://0x7f.1/", "http://0.0.0.0/",
      "http://169.254.169.254/latest", "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/", "http://100.64.0.1/",
      "http://[::ffff:127.0.0.1]/", "http://[fd00::1]/", "http://[fe80::1]/", "http://api.localhost/"
    ]) {
      const refused = checkReferences(withModel({ provider: "openai-chat", model: "m", baseUrl: url }), declared, "remote")
      expect(refused?.message, url).toContain("supervisor's own network")
    }
    // Listed by the operator, an internal address is allowed.
    expect(checkReferences(withModel({ provider: "openai-chat", model: "m", baseUrl: "http://10.1.2.3:8000/v1" }), declared, "remote")).toBeUndefined()
    expect(isInternalHost("example.com")).toBe(false)
    expect(isInternalHost("8.8.8.8")).toBe(false)
    expect(isInternalHost("172.32.0.1")).toBe(false)
  })

  it("matches the allowlist by scheme, host, port and a path prefix at a segment boundary", () => {
    const allowed = ["https://a.example.com/v1", "http://b.example.com:8080"]
    expect(urlAllowed("https://a.example.com/v1", allowed)).toBe(true)
    expect(urlAllowed("https://a.example.com/v1/chat/completions", allowed)).toBe(true)
    expect(urlAllowed("https://A.EXAMPLE.com/v1", allowed)).toBe(true)
    expect(urlAllowed("https://a.example.com:443/v1", allowed)).toBe(true)
    expect(urlAllowed("https://a.example.com/v10", allowed)).toBe(false)
    expect(urlAllowed("https://a.example.com/", allowed)).toBe(false)
    expect(urlAllowed("https://a.example.com.evil.net/v1", allowed)).toBe(false)
    expect(urlAllowed("https://a.example.com:8443/v1", allowed)).toBe(false)
    expect(urlAllowed("http://b.example.com:8080/anything", allowed)).toBe(true)
    expect(urlAllowed("http://b.example.com/anything", allowed)).toBe(false)
    expect(urlAllowed("file:///etc/passwd", allowed)).toBe(false)
    expect(urlAllowed("not a url", allowed)).toBe(false)
  })

  it("schema: a model names an endpoint or a provider, and an MCP server a transport or a declared server, exactly one", () => {
    expect(() => withModel({ endpoint: "openai", provider: "openai-chat" })).toThrow(/model.provider cannot be given with model.endpoint/)
    expect(() => withModel({ endpoint: "openai", apiKeyFile: "/x" })).toThrow(/model.apiKeyFile cannot be given/)
    expect(() => withModel({ model: "m" })).toThrow(/names endpoint/)
    expect(() => withModel({ provider: "openai-chat" })).toThrow(/model.model is required/)
    expect(() => withModel({ provider: "scripted", model: "s", mcp: [{ name: "x" }] })).toThrow(/exactly one of transport/)
    expect(() => withModel({ provider: "scripted", model: "s", mcp: [{ name: "x", server: "github", transport: { type: "stdio", command: "sh" } }] })).toThrow(/exactly one of transport/)
  })
})

describe("declared resources in the configuration", () => {
  it("loads endpoints, MCP servers, secrets and allowed URLs", () => {
    const config = loadConfigSync({
      overrides: {
        secrets: { openai: { env: "OPENAI_API_KEY" }, gh: { file: "/run/secrets/gh" } },
        execution: {
          models: { openai: { provider: "openai-chat", base_url: "https://api.openai.com/v1", model: "gpt-4.1", api_key_secret: "openai" } },
          mcp_servers: { github: { url: "https://mcp.example.com", bearer_secret: "gh" }, fs: { command: ["mcp-fs", "--root", "/srv"], env_secrets: { TOKEN: "gh" } } },
          allowed_urls: ["https://models.example.com/v1"]
        }
      }
    })
    expect(config.execution.models.openai?.api_key_secret).toBe("openai")
    expect(config.execution.mcp_servers.fs?.command).toEqual(["mcp-fs", "--root", "/srv"])
  })

  it.each([
    [{ execution: { models: { m: { provider: "anthropic", base_url: "https://x.example.com", api_key_secret: "missing" } } } }, "execution.models.m.api_key_secret"],
    [{ execution: { mcp_servers: { s: { url: "https://x.example.com", bearer_secret: "missing" } } } }, "execution.mcp_servers.s.bearer_secret"],
    [{ execution: { mcp_servers: { s: { command: ["x"], env_secrets: { T: "missing" } } } } }, "execution.mcp_servers.s.env_secrets.T"]
  ])("refuses a reference to an undeclared secret with E2000 naming the key (%#)", (overrides, key) => {
    const config = loadConfigSync({ overrides })
    expect(checkDeclarations(config)).toMatchObject({ code: "E2000", key })
    // Declared by a secret store of the embedder's own, it holds.
    expect(checkDeclarations(config, ["missing"])).toBeUndefined()
  })

  it.each([
    [{ secrets: { s: { env: "A", file: "/b" } } }, /exactly one of env/],
    [{ secrets: { s: {} } }, /exactly one of env/],
    [{ execution: { mcp_servers: { s: { command: ["x"], url: "https://x.example.com" } } } }, /exactly one of command/],
    [{ execution: { models: { m: { provider: "openai-chat", base_url: "ftp://x" } } } }, /http\(s\) URL/],
    [{ execution: { allowed_urls: ["https://u:p@x.example.com"] } }, /without credentials/]
  ])("refuses a malformed declaration with E2000 (%#)", (overrides, message) => {
    expect(() => loadConfigSync({ overrides })).toThrow(message)
  })
})
