import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { AgentConfig } from "../../src/domain/AgentConfig.ts"
import { resolveSandbox } from "../../src/domain/resolveSandbox.ts"
import { loadConfigSync } from "../../src/runtime/loadConfig.ts"

const decode = Schema.decodeUnknownExit(AgentConfig)
const settings = loadConfigSync()

describe("AgentConfig", () => {
  it("accepts a full config", () => {
    const exit = decode({
      name: "researcher-1",
      image: "l02-agent:latest",
      command: ["sh", "-c", "cat"],
      env: { MODEL: "x" },
      trustLevel: "UNTRUSTED",
      resources: { cpu: "500m", memory: "512Mi", tokensPerHour: 1000 },
      sessionId: "7d8f3f9c-2f4a-4c1e-9a77-3b1f0f6a2b11",
      labels: { team: "search", "example.com/tier": "gold" }
    })
    expect(exit._tag).toBe("Success")
  })

  it.each([
    [{ name: "Bad_Name" }, "name"],
    [{ name: "ok", trustLevel: "ROOT" }, "trustLevel"],
    [{ name: "ok", resources: { cpu: "-1" } }, "cpu"],
    [{ name: "ok", resources: { memory: "2Zi" } }, "memory"],
    [{ name: "ok", resources: { memory: "abc" } }, "memory"],
    [{ name: "ok", env: { "1BAD": "x" } }, "env"],
    [{ name: "ok", labels: { "l02.dev/agent-id": "x" } }, "labels"],
    [{ name: "ok", sessionId: "not-a-uuid" }, "sessionId"],
    [{ name: "ok", command: [] }, "command"]
  ])("rejects %j naming %s", (input, path) => {
    const exit = decode(input, { errors: "all" })
    expect(exit._tag).toBe("Failure")
    expect(String(exit)).toContain(path)
  })
})

describe("resolveSandbox", () => {
  it("maps trust levels to the specification's runtime class, network and security context", () => {
    const rows = (["TRUSTED", "STANDARD", "UNTRUSTED", "CONFIDENTIAL"] as const).map((trustLevel) => {
      const s = resolveSandbox({ name: "a", trustLevel }, settings)
      if ("_tag" in s) throw s
      return [trustLevel, s.runtimeClass, s.networkPolicy, s.securityContext.readOnlyRootFilesystem, s.securityContext.confidentialComputing]
    })
    expect(rows).toEqual([
      ["TRUSTED", "runc", "allow_egress", false, false],
      ["STANDARD", "gvisor", "restricted", true, false],
      ["UNTRUSTED", "kata", "isolated", true, false],
      ["CONFIDENTIAL", "kata-cc", "isolated", true, true]
    ])
  })

  it("fills defaults from the configuration and normalises quantities", () => {
    const s = resolveSandbox({ name: "a", resources: { cpu: "0.5" } }, settings)
    expect(s).toMatchObject({ trustLevel: "STANDARD", resources: { cpu: "500m", cpuMillis: 500, memory: "2Gi", tokensPerHour: 100000, pids: 256 } })
    expect(s).toMatchObject({ securityContext: { runAsUser: 65534, runAsNonRoot: true, allowPrivilegeEscalation: false, dropCapabilities: ["ALL"] } })
  })

  it("refuses limits above the configured maximum with E2042 naming the key", () => {
    const s = resolveSandbox({ name: "a", resources: { memory: "64Gi" } }, settings)
    expect(s).toMatchObject({ code: "E2042", key: "resources.memory" })
    expect(resolveSandbox({ name: "a", resources: { cpu: "9" } }, settings)).toMatchObject({ code: "E2042", key: "resources.cpu" })
  })
})

describe("configuration", () => {
  it.each([
    [{ lifecycle: { max_restart_count: -1 } }, "lifecycle.max_restart_count"],
    [{ lifecycle: { bogus: 1 } }, "lifecycle.bogus"],
    [{ sandbox: { default_cpu: "abc" } }, "sandbox.default_cpu"],
    [{ runtime: { backend: "local" } }, "runtime.backend"],
    [{ nope: { a: 1 } }, "nope"]
  ])("refuses %j with E2000 naming %s", (overrides, key) => {
    expect(() => loadConfigSync({ overrides })).toThrow(expect.objectContaining({ code: "E2000", key }))
  })

  it("reads L02_<SECTION>__<KEY> environment overrides with their YAML types", () => {
    const c = loadConfigSync({ env: { L02_LIFECYCLE__MAX_RESTART_COUNT: "3", L02_LIFECYCLE__ENABLE_SUSPEND: "false" } })
    expect(c.lifecycle.max_restart_count).toBe(3)
    expect(c.lifecycle.enable_suspend).toBe(false)
    expect(() => loadConfigSync({ env: { L02_LIFECYCLE__MAX_RESTART_COUNT: "many" } })).toThrow(
      expect.objectContaining({ code: "E2000", key: "lifecycle.max_restart_count" })
    )
  })
})
